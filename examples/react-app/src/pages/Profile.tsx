import { useEffect, useState } from "react";
import { useNavigate } from "react-router";
import { client } from "../altogic";
import { useAuth, type AppUser } from "../auth";
import { ChangeEmail, ChangePassword } from "../components/AccountForms";
import Avatar from "../components/Avatar";
import Sessions from "../components/Sessions";
import UserInfo from "../components/UserInfo";
import { Alert, Button, Card, useFlash } from "../components/ui";
import { messageOf, networkMessage } from "../errors";

export default function Profile() {
  const flash = useFlash();
  const { setUser, signedOut } = useAuth();
  const navigate = useNavigate();
  const [sessionsVersion, setSessionsVersion] = useState(0);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  // Fresh data from the server; a session signed out elsewhere makes the client send us to /sign-in.
  useEffect(() => {
    let active = true;
    client()
      .auth.getUserFromDB()
      .then(({ user }) => {
        if (active && user) setUser(user as AppUser);
      })
      .catch(() => undefined);
    return () => {
      active = false;
    };
  }, [setUser]);

  async function signOut() {
    setBusy(true);
    setError(null);
    try {
      const { errors } = await client().auth.signOut();
      if (errors) {
        setError(messageOf(errors));
        return;
      }
      signedOut("You are signed out.");
      navigate("/sign-in", { replace: true });
    } catch {
      setError(networkMessage());
    } finally {
      setBusy(false);
    }
  }

  return (
    <Card title="Your profile" wide>
      <div className="space-y-8">
        {flash.notice && <Alert kind="success">{flash.notice}</Alert>}
        <div className="flex flex-col items-center gap-4 sm:flex-row sm:items-start sm:gap-6">
          <Avatar />
          <UserInfo />
        </div>
        <Sessions reload={sessionsVersion} />
        <div className="space-y-3">
          <ChangePassword onChanged={() => setSessionsVersion((v) => v + 1)} />
          <ChangeEmail />
        </div>
        {error && <Alert kind="error">{error}</Alert>}
        <div className="flex justify-end border-t border-stone-200 pt-6">
          <Button variant="secondary" busy={busy} busyText="Signing out…" onClick={signOut}>
            Sign out
          </Button>
        </div>
      </div>
    </Card>
  );
}
