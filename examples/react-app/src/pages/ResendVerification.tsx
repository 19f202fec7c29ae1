import { client } from "../altogic";
import EmailRequest from "../components/EmailRequest";

export default function ResendVerification() {
  return (
    <EmailRequest
      title="Confirm your email address"
      intro="Lost the confirmation email? We send you a new link."
      button="Send the confirmation email"
      busyText="Sending…"
      send={(email) => client().auth.resendVerificationEmail(email)}
      sent={(email) => (
        <>
          If <strong>{email}</strong> is waiting for confirmation, a new link is on its way.
        </>
      )}
    />
  );
}
