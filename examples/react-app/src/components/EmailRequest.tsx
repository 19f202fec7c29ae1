/** A page that asks for an email address and has the server mail a link to it. */
import { useState, type FormEvent, type ReactNode } from "react";
import type { APIError } from "altogic";
import { messageOf, networkMessage } from "../errors";
import MailboxHint from "./MailboxHint";
import { Alert, Button, Card, Field, TextLink, useFlash } from "./ui";

interface Props {
  title: string;
  intro: ReactNode;
  button: string;
  busyText: string;
  send: (email: string) => Promise<{ errors: APIError | null }>;
  sent: (email: string) => ReactNode;
}

export default function EmailRequest({ title, intro, button, busyText, send, sent }: Props) {
  const flash = useFlash();
  const [email, setEmail] = useState(flash.email ?? "");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [sentTo, setSentTo] = useState<string | null>(null);

  async function submit(event: FormEvent) {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const { errors } = await send(email.trim());
      if (errors) setError(messageOf(errors));
      else setSentTo(email.trim());
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
          <Alert kind="success">{sent(sentTo)}</Alert>
          <MailboxHint />
          <p className="text-sm text-stone-600">
            <TextLink to="/sign-in">Back to sign in</TextLink>
          </p>
        </div>
      </Card>
    );
  }

  return (
    <Card title={title}>
      <form onSubmit={submit} className="space-y-4" noValidate>
        <p className="text-sm text-stone-600">{intro}</p>
        {error && <Alert kind="error">{error}</Alert>}
        <Field label="Email" type="email" autoComplete="email" required value={email} onChange={(e) => setEmail(e.target.value)} />
        <Button type="submit" busy={busy} busyText={busyText} className="w-full">
          {button}
        </Button>
      </form>
      <p className="mt-6 text-sm text-stone-600">
        <TextLink to="/sign-in">Back to sign in</TextLink>
      </p>
    </Card>
  );
}
