/** The name: click to edit, Enter saves through the `users` model, Escape cancels. */
import { useState, type KeyboardEvent } from "react";
import { client } from "../altogic";
import { useAuth, type AppUser } from "../auth";
import { messageOf, networkMessage } from "../errors";
import { Alert } from "./ui";

export default function UserInfo() {
  const { user, setUser } = useAuth();
  const [editing, setEditing] = useState(false);
  const [name, setName] = useState(user?.name ?? "");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  if (!user) return null;

  async function save() {
    if (!user) return;
    const next = name.trim();
    if (next === (user.name ?? "")) {
      setEditing(false);
      return;
    }
    setBusy(true);
    setError(null);
    try {
      const { data, errors } = await client().db.model("users").object(user._id).update({ name: next });
      if (errors || !data) {
        setError(messageOf(errors));
        return;
      }
      setUser(data as AppUser);
      setEditing(false);
    } catch {
      setError(networkMessage());
    } finally {
      setBusy(false);
    }
  }

  function onKey(event: KeyboardEvent<HTMLInputElement>) {
    if (event.key === "Enter") {
      event.preventDefault();
      void save();
    } else if (event.key === "Escape") {
      setName(user?.name ?? "");
      setEditing(false);
      setError(null);
    }
  }

  return (
    <div className="min-w-0 flex-1 space-y-1 text-center sm:text-left">
      {editing ? (
        <input
          aria-label="Name"
          autoFocus
          disabled={busy}
          value={name}
          onChange={(e) => setName(e.target.value)}
          onKeyDown={onKey}
          className="w-full rounded-lg border border-stone-300 px-3 py-1.5 text-xl font-semibold outline-none focus:border-stone-500 focus:ring-2 focus:ring-stone-200"
        />
      ) : (
        <h2 className="flex flex-wrap items-center justify-center gap-2 text-xl font-semibold sm:justify-start">
          <span data-testid="profile-name" className="wrap-anywhere">
            {user.name || "No name yet"}
          </span>
          <button
            type="button"
            onClick={() => {
              setName(user.name ?? "");
              setEditing(true);
            }}
            className="text-sm font-normal text-stone-500 underline underline-offset-4 hover:text-stone-900"
          >
            Edit name
          </button>
        </h2>
      )}
      {editing && <p className="text-xs text-stone-500">{busy ? "Saving…" : "Press Enter to save, Escape to cancel."}</p>}
      <p className="wrap-anywhere text-sm text-stone-600" data-testid="profile-email">
        {user.email}
        {user.emailVerified === false && <span className="ml-2 rounded bg-amber-100 px-1.5 py-0.5 text-xs text-amber-800">not confirmed</span>}
      </p>
      {error && <Alert kind="error">{error}</Alert>}
    </div>
  );
}
