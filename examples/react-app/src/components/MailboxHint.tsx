import { config } from "../config";

/** On a server that catches mail in its dev outbox, say where the mail went. */
export default function MailboxHint() {
  if (!config?.devMailbox) return null;
  return (
    <p className="text-sm text-stone-600">
      This server keeps mail in its{" "}
      <a href={config.devMailbox} target="_blank" rel="noreferrer" className="font-medium underline underline-offset-4">
        dev mailbox
      </a>
      .
    </p>
  );
}
