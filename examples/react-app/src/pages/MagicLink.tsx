import { client } from "../altogic";
import EmailRequest from "../components/EmailRequest";

export default function MagicLink() {
  return (
    <EmailRequest
      title="Sign in with a magic link"
      intro="We email you a link that signs you in: no password needed."
      button="Send me a magic link"
      busyText="Sending…"
      send={(email) => client().auth.sendMagicLinkEmail(email)}
      sent={(email) => (
        <>
          If <strong>{email}</strong> has an account, a sign-in link is on its way. Open it on this device.
        </>
      )}
    />
  );
}
