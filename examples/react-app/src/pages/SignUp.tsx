import { useState, type FormEvent } from "react";
import { useNavigate } from "react-router";
import { client } from "../altogic";
import { useAuth } from "../auth";
import MailboxHint from "../components/MailboxHint";
import { Alert, Button, Card, Field, TextLink } from "../components/ui";
import { messageOf, networkMessage } from "../errors";

export default function SignUp() {
  const { signedIn } = useAuth();
  const navigate = useNavigate();
  const [name, setName] = useState("");
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [sentTo, setSentTo] = useState<string | null>(null);

  async function submit(event: FormEvent) {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      // The client's signature is (email, password, nameOrUserData).
      const { user, session, errors } = await client().auth.signUpWithEmail(email.trim(), password, name.trim());
      if (errors) {
        setError(messageOf(errors));
        return;
      }
      if (user && session) {
        signedIn(user, session);
        navigate("/profile", { replace: true });
        return;
      }
      setSentTo(email.trim());
    } catch {
      setError(networkMessage());
    } finally {
      setBusy(false);
    }
  }

  if (sentTo) {
    return (
      <Card title="Check your inbox">
        <div className="space-y-4">
          <Alert kind="success">
            We sent a confirmation email to <strong>{sentTo}</strong>. Open the link in it to finish signing up.
          </Alert>
          <MailboxHint />
          <p className="text-sm text-stone-600">
            No mail after a few minutes?{" "}
            <TextLink to="/resend-verification" state={{ email: sentTo }}>
              Send it again
            </TextLink>
          </p>
        </div>
      </Card>
    );
  }

  return (
    <Card title="Create an account">
      <form onSubmit={submit} className="space-y-4" noValidate>
        {error && <Alert kind="error">{error}</Alert>}
        <Field label="Name" autoComplete="name" value={name} onChange={(e) => setName(e.target.value)} />
        <Field label="Email" type="email" autoComplete="email" required value={email} onChange={(e) => setEmail(e.target.value)} />
        <Field
          label="Password"
          type="password"
          autoComplete="new-password"
          required
          hint="At least 8 characters; a common password is refused."
          value={password}
          onChange={(e) => setPassword(e.target.value)}
        />
        <Button type="submit" busy={busy} busyText="Creating your account…" className="w-full">
          Sign up
        </Button>
      </form>
      <p className="mt-6 text-sm text-stone-600">
        Already have an account? <TextLink to="/sign-in">Sign in</TextLink>
      </p>
    </Card>
  );
}
