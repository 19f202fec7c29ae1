import { client } from "../altogic";
import EmailRequest from "../components/EmailRequest";

export default function ForgotPassword() {
  return (
    <EmailRequest
      title="Forgot your password?"
      intro="Enter your email address and we send you a link to choose a new password."
      button="Send me a reset link"
      busyText="Sending…"
      send={(email) => client().auth.sendResetPwdEmail(email)}
      sent={(email) => (
        <>
          If <strong>{email}</strong> has an account, a link to reset the password is on its way.
        </>
      )}
    />
  );
}
