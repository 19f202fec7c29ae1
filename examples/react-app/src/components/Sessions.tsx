/** Where the account is signed in: the current session marked, any other one signed out. */
import { useCallback, useEffect, useState } from "react";
import type { Session } from "altogic";
import { client } from "../altogic";
import { useAuth } from "../auth";
import { messageOf, networkMessage } from "../errors";
import { Alert, Button } from "./ui";

const WHEN = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

/** Operating systems of desktop and laptop computers, whose device family the server reports as "Other". */
const COMPUTER_OS = /^(Windows|Mac OS X|macOS|Linux|Ubuntu|Debian|Fedora|Chrome OS|FreeBSD|OpenBSD)\b/;

function describe(session: Session): { device: string; detail: string } {
  const agent = session.userAgent;
  const known = (family?: string) => (family && family !== "Other" ? family : null);
  const browser = known(agent?.family);
  const os = known(agent?.os?.family);
  const version = browser && agent.major && agent.major !== "0" ? ` ${agent.major}` : "";
  const detail = [browser ? `${browser}${version}` : null, os ? `on ${os}` : null].filter(Boolean).join(" ");
  const device = known(agent?.device?.family) ?? (os && COMPUTER_OS.test(os) ? "Computer" : "Unknown device");
  return { device, detail: detail || "Unknown browser" };
}

export default function Sessions({ reload }: { reload: number }) {
  const { session: current } = useAuth();
  const [sessions, setSessions] = useState<Session[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState<string | null>(null);

  const load = useCallback(async () => {
    try {
      const { sessions: list, errors } = await client().auth.getAllSessions();
      if (errors || !list) {
        setError(messageOf(errors));
        return;
      }
      const mine = (s: Session) => (s.token === current?.token ? 1 : 0);
      setSessions([...list].sort((a, b) => mine(b) - mine(a) || b.creationDtm.localeCompare(a.creationDtm)));
      setError(null);
    } catch {
      setError(networkMessage());
    }
  }, [current?.token]);

  useEffect(() => {
    void load();
  }, [load, reload]);

  async function signOut(token: string) {
    setBusy(token);
    try {
      const { errors } = await client().auth.signOut(token);
      if (errors) setError(messageOf(errors));
      else setSessions((list) => list?.filter((s) => s.token !== token) ?? null);
    } finally {
      setBusy(null);
    }
  }

  async function signOutOthers() {
    setBusy("others");
    try {
      const { errors } = await client().auth.signOutAllExceptCurrent();
      if (errors) setError(messageOf(errors));
      else await load();
    } catch {
      setError(networkMessage());
    } finally {
      setBusy(null);
    }
  }

  const others = sessions?.filter((s) => s.token !== current?.token).length ?? 0;
  return (
    <section aria-labelledby="sessions-title" className="space-y-3">
      <div className="flex flex-wrap items-center justify-between gap-2">
        <h2 id="sessions-title" className="text-lg font-semibold">
          Sessions
        </h2>
        {others > 0 && (
          <Button variant="secondary" busy={busy === "others"} busyText="Signing out…" onClick={signOutOthers}>
            Sign out all other sessions
          </Button>
        )}
      </div>
      {error && <Alert kind="error">{error}</Alert>}
      {sessions === null && !error && <p className="text-sm text-stone-500">Loading sessions…</p>}
      <ul className="divide-y divide-stone-200 rounded-xl border border-stone-200">
        {sessions?.map((session) => {
          const isCurrent = session.token === current?.token;
          const { device, detail } = describe(session);
          return (
            <li key={session.token} data-testid="session" data-current={isCurrent} className="flex items-center justify-between gap-3 px-4 py-3">
              <div className="min-w-0">
                <p className="font-medium">
                  {detail}
                  {isCurrent && <span className="ml-2 whitespace-nowrap rounded bg-emerald-100 px-1.5 py-0.5 text-xs font-medium text-emerald-800">This device</span>}
                </p>
                <p className="text-sm text-stone-600">Device: {device}</p>
                <p className="text-sm text-stone-600">Signed in {WHEN.format(new Date(session.creationDtm))}</p>
              </div>
              {!isCurrent && (
                <Button variant="danger" busy={busy === session.token} busyText="Signing out…" onClick={() => signOut(session.token)}>
                  Sign out
                </Button>
              )}
            </li>
          );
        })}
      </ul>
    </section>
  );
}
