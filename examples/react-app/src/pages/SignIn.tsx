import { useState, type FormEvent } from "react";
import { useNavigate } from "react-router";
import { client } from "../altogic";
import { useAuth } from "../auth";
import { Alert, Button, Card, Field, TextLink, useFlash } from "../components/ui";
import { hasCode, messageOf, networkMessage } from "../errors";

export default function SignIn() {
  const flash = useFlash();
  const { signedIn, signOutNotice } = useAuth();
  const notice = flash.notice ?? signOutNotice;
  const navigate = useNavigate();
  const [email, setEmail] = useState(flash.email ?? "");
  const [password, setPassword] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(flash.error ?? null);
  const [unverified, setUnverified] = useState(false);

  async function submit(event: FormEvent) {
    event.preventDefault();
    setBusy(true);
    setError(null);
    setUnverified(false);
    try {
      const { user, session, errors } = await client().auth.signInWithEmail(email.trim(), password);
      if (errors || !user || !session) {
        setError(messageOf(errors));
        setUnverified(hasCode(errors, "email_not_verified"));
        return;
      }
      signedIn(user, session);
      navigate("/profile", { replace: true });
    } catch {
      setError(networkMessage());
    } finally {
      setBusy(false);
    }
  }

  return (
    <Card title="Sign in">
      <form onSubmit={submit} className="space-y-4" noValidate>
        {notice && !error && <Alert kind="success">{notice}</Alert>}
        {error && (
          <Alert kind="error">
            {error}
            {unverified && (
              <>
                {" "}
                <TextLink to="/resend-verification" state={{ email }}>
                  Send the confirmation email again
                </TextLink>
              </>
            )}
          </Alert>
        )}
        <Field label="Email" type="email" autoComplete="email" required value={email} onChange={(e) => setEmail(e.target.value)} />
        <Field
          label="Password"
          type="password"
          autoComplete="current-password"
          required
          value={password}
          onChange={(e) => setPassword(e.target.value)}
        />
        <Button type="submit" busy={busy} busyText="Signing in…" className="w-full">
          Sign in
        </Button>
      </form>
      <div className="mt-6 space-y-2 text-sm text-stone-600">
        <p>
          <TextLink to="/forgot-password" state={{ email }}>
            Forgot your password?
          </TextLink>
        </p>
        <p>
          No account yet? <TextLink to="/sign-up">Sign up</TextLink> · <TextLink to="/magic-link">Use a magic link</TextLink>
        </p>
      </div>
    </Card>
  );
}
