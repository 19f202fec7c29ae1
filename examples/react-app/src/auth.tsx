/**
 * The signed-in user and session, kept where the client keeps them (`auth.getUser/setUser/
 * getSession/setSession`, i.e. localStorage), mirrored in React state so screens re-render.
 */
import { createContext, useCallback, useContext, useMemo, useState, type ReactNode } from "react";
import type { Session, User } from "altogic";
import { client } from "./altogic";

/** The user object as Basalt sends it (the client's type lacks a few fields). */
export type AppUser = User & { emailVerified?: boolean };

interface AuthState {
  user: AppUser | null;
  session: Session | null;
  /** Store both after a sign-in, a sign-up with a session or a redeemed grant. */
  signedIn: (user: User, session: Session) => void;
  /** Replace the stored user (after a profile change). */
  setUser: (user: User) => void;
  /** Forget both (after a sign-out or a reset), with a message for the sign-in page. */
  signedOut: (notice?: string) => void;
  /**
   * The message of the last sign-out. Kept here rather than in the router's state: the private
   * route's own redirect to /sign-in may win the race against the page's navigation.
   */
  signOutNotice: string | null;
}

const AuthContext = createContext<AuthState | null>(null);

export function AuthProvider({ children }: { children: ReactNode }) {
  const auth = client().auth;
  const [user, setUserState] = useState<AppUser | null>(() => auth.getUser());
  const [session, setSessionState] = useState<Session | null>(() => auth.getSession());
  const [signOutNotice, setSignOutNotice] = useState<string | null>(null);

  const signedIn = useCallback(
    (nextUser: User, nextSession: Session) => {
      auth.setUser(nextUser);
      auth.setSession(nextSession);
      setUserState(nextUser);
      setSessionState(nextSession);
      setSignOutNotice(null);
    },
    [auth],
  );
  const setUser = useCallback(
    (nextUser: User) => {
      auth.setUser(nextUser);
      setUserState(nextUser);
    },
    [auth],
  );
  const signedOut = useCallback(
    (notice?: string) => {
      auth.clearLocalData();
      setUserState(null);
      setSessionState(null);
      setSignOutNotice(notice ?? null);
    },
    [auth],
  );

  const value = useMemo(
    () => ({ user, session, signedIn, setUser, signedOut, signOutNotice }),
    [user, session, signedIn, setUser, signedOut, signOutNotice],
  );
  return <AuthContext.Provider value={value}>{children}</AuthContext.Provider>;
}

export function useAuth(): AuthState {
  const state = useContext(AuthContext);
  if (!state) throw new Error("useAuth outside AuthProvider");
  return state;
}
