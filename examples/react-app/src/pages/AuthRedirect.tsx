/**
 * Where emailed links land after Basalt checked them: `status`, `action`, then `access_token`
 * or `error` (protocol §4.1). A grant is single-use, and React's StrictMode runs effects twice
 * in development, so each token is redeemed once and every run waits for that one answer.
 */
import { useEffect } from "react";
import { useNavigate, useSearchParams } from "react-router";
import type { APIError, Session, User } from "altogic";
import { client } from "../altogic";
import { useAuth, type AppUser } from "../auth";
import { Card } from "../components/ui";
import { messageOf } from "../errors";

type Grant = { user: User | null; session: Session | null; errors: APIError | null };

const redeemed = new Map<string, Promise<Grant>>();

function redeemOnce(token: string): Promise<Grant> {
  let grant = redeemed.get(token);
  if (!grant) {
    grant = client()
      .auth.getAuthGrant(token)
      .catch((): Grant => ({ user: null, session: null, errors: null }));
    redeemed.set(token, grant);
  }
  return grant;
}

export default function AuthRedirect() {
  const [params] = useSearchParams();
  const navigate = useNavigate();
  const { session, signedIn, setUser } = useAuth();

  useEffect(() => {
    let active = true;
    const status = params.get("status");
    const action = params.get("action");
    const token = params.get("access_token");
    const error = params.get("error");
    const toSignIn = (message: string) => navigate("/sign-in", { replace: true, state: { error: message } });

    if ((status && status !== "200") || error) {
      toSignIn(error || "This link did not work. Request a new one.");
    } else if (action === "reset-pwd") {
      navigate("/reset-password", { replace: true, state: { token } });
    } else if (action === "change-email") {
      if (!session) {
        navigate("/sign-in", { replace: true, state: { notice: "Your email address is changed. Sign in with it." } });
      } else {
        client()
          .auth.getUserFromDB()
          .then(({ user }) => {
            if (!active) return;
            if (user) setUser(user as AppUser);
            navigate("/profile", { replace: true, state: { notice: `Your email address is now ${user?.email ?? "changed"}.` } });
          })
          .catch(() => active && navigate("/profile", { replace: true }));
      }
    } else if (!token) {
      toSignIn("This link has no access token. Request a new one.");
    } else {
      void redeemOnce(token).then(({ user, session: granted, errors }) => {
        if (!active) return;
        if (user && granted) {
          signedIn(user, granted);
          navigate("/profile", { replace: true });
        } else {
          toSignIn(errors ? messageOf(errors) : "The server cannot be reached. Try the link again.");
        }
      });
    }
    return () => {
      active = false;
    };
    // One run per visit: the parameters are the page's input, the rest are stable or read once.
  }, [params]);

  return (
    <Card title="Signing you in…">
      <p className="text-stone-600" role="status">
        One moment while we check your link.
      </p>
    </Card>
  );
}
