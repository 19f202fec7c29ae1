import { useState, type FormEvent } from "react";
import { useNavigate } from "react-router";
import { client } from "../altogic";
import { useAuth } from "../auth";
import { Alert, Button, Card, Field, TextLink, useFlash } from "../components/ui";
import { messageOf, networkMessage } from "../errors";

export default function ResetPassword() {
  const { token } = useFlash();
  const { signedOut } = useAuth();
  const navigate = useNavigate();
  const [password, setPassword] = useState("");
  const [repeat, setRepeat] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  if (!token) {
    return (
      <Card title="Choose a new password">
        <div className="space-y-4">
          <Alert kind="info">Open this page from the link in the password reset email.</Alert>
          <p className="text-sm text-stone-600">
            <TextLink to="/forgot-password">Send me a new reset link</TextLink>
          </p>
        </div>
      </Card>
    );
  }

  async function submit(event: FormEvent) {
    event.preventDefault();
    if (password !== repeat) {
      setError("The two passwords are not the same.");
      return;
    }
    setBusy(true);
    setError(null);
    try {
      const { errors } = await client().auth.resetPwdWithToken(token ?? "", password);
      if (errors) {
        setError(messageOf(errors));
        return;
      }
      // A reset ends every session, this browser's too.
      signedOut("Your password is changed. Sign in with the new one.");
      navigate("/sign-in", { replace: true });
    } catch {
      setError(networkMessage());
    } finally {
      setBusy(false);
    }
  }

  return (
    <Card title="Choose a new password">
      <form onSubmit={submit} className="space-y-4" noValidate>
        {error && <Alert kind="error">{error}</Alert>}
        <Field
          label="New password"
          type="password"
          autoComplete="new-password"
          hint="At least 8 characters; a common password is refused."
          value={password}
          onChange={(e) => setPassword(e.target.value)}
        />
        <Field label="Repeat the new password" type="password" autoComplete="new-password" value={repeat} onChange={(e) => setRepeat(e.target.value)} />
        <Button type="submit" busy={busy} busyText="Saving…" className="w-full">
          Set the new password
        </Button>
      </form>
    </Card>
  );
}
