/** Change password and change email, each behind a disclosure on the profile. */
import { useState, type FormEvent, type ReactNode } from "react";
import { client } from "../altogic";
import { useAuth, type AppUser } from "../auth";
import { messageOf, networkMessage } from "../errors";
import { Alert, Button, Field } from "./ui";

function Disclosure({ title, children }: { title: string; children: ReactNode }) {
  return (
    <details className="group rounded-xl border border-stone-200 px-4 py-3">
      <summary className="cursor-pointer list-none font-medium marker:hidden">
        <span className="mr-2 inline-block transition group-open:rotate-90">›</span>
        {title}
      </summary>
      <div className="pt-4">{children}</div>
    </details>
  );
}

export function ChangePassword({ onChanged }: { onChanged: () => void }) {
  const [current, setCurrent] = useState("");
  const [next, setNext] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [done, setDone] = useState(false);

  async function submit(event: FormEvent) {
    event.preventDefault();
    setBusy(true);
    setError(null);
    setDone(false);
    try {
      // The client's signature is (newPassword, oldPassword).
      const { errors } = await client().auth.changePassword(next, current);
      if (errors) {
        setError(messageOf(errors));
        return;
      }
      setCurrent("");
      setNext("");
      setDone(true);
      onChanged();
    } catch {
      setError(networkMessage());
    } finally {
      setBusy(false);
    }
  }

  return (
    <Disclosure title="Change password">
      <form onSubmit={submit} className="space-y-4" noValidate>
        {error && <Alert kind="error">{error}</Alert>}
        {done && <Alert kind="success">Your password is changed. Your other sessions were signed out.</Alert>}
        <Field label="Current password" type="password" autoComplete="current-password" value={current} onChange={(e) => setCurrent(e.target.value)} />
        <Field label="New password" type="password" autoComplete="new-password" value={next} onChange={(e) => setNext(e.target.value)} />
        <Button type="submit" busy={busy} busyText="Changing…">
          Change password
        </Button>
      </form>
    </Disclosure>
  );
}

export function ChangeEmail() {
  const { setUser } = useAuth();
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);

  async function submit(event: FormEvent) {
    event.preventDefault();
    setBusy(true);
    setError(null);
    setNotice(null);
    try {
      const newEmail = email.trim();
      const { user, errors } = await client().auth.changeEmail(password, newEmail);
      if (errors || !user) {
        setError(messageOf(errors));
        return;
      }
      setPassword("");
      if (user.email.toLowerCase() === newEmail.toLowerCase()) {
        setUser(user as AppUser);
        setNotice(`Your email address is now ${user.email}.`);
      } else {
        setNotice(`We sent a confirmation link to ${newEmail}. Your address changes when you open it.`);
      }
      setEmail("");
    } catch {
      setError(networkMessage());
    } finally {
      setBusy(false);
    }
  }

  return (
    <Disclosure title="Change email address">
      <form onSubmit={submit} className="space-y-4" noValidate>
        {error && <Alert kind="error">{error}</Alert>}
        {notice && <Alert kind="success">{notice}</Alert>}
        <Field label="New email" type="email" autoComplete="email" value={email} onChange={(e) => setEmail(e.target.value)} />
        <Field label="Password" id="change-email-password" type="password" autoComplete="current-password" value={password} onChange={(e) => setPassword(e.target.value)} />
        <Button type="submit" busy={busy} busyText="Sending…">
          Change email
        </Button>
      </form>
    </Disclosure>
  );
}
