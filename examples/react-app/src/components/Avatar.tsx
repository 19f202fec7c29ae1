/**
 * The profile picture: uploaded to the `root` bucket as `user_<id>`, its `publicPath` stored in
 * the user's `profilePicture` (the tutorial's two calls). Until then an inline placeholder: no
 * request leaves for another host.
 */
import { useRef, useState, type ChangeEvent } from "react";
import { client } from "../altogic";
import { useAuth, type AppUser } from "../auth";
import { config } from "../config";
import { messageOf, networkMessage } from "../errors";
import { Alert, Button } from "./ui";

const ACCEPTED = "image/png,image/jpeg,image/gif,image/webp";

function Placeholder({ user }: { user: AppUser }) {
  const initial = (user.name || user.email || "?").trim().charAt(0).toUpperCase();
  return (
    <svg viewBox="0 0 96 96" role="img" aria-label="No profile picture yet" className="h-full w-full" data-testid="avatar-placeholder">
      <rect width="96" height="96" fill="#e7e5e4" />
      <circle cx="48" cy="38" r="18" fill="#a8a29e" />
      <path d="M14 92c4-20 18-30 34-30s30 10 34 30z" fill="#a8a29e" />
      <text x="48" y="44" textAnchor="middle" fontSize="18" fontWeight="600" fill="#fafaf9" fontFamily="system-ui, sans-serif">
        {initial}
      </text>
    </svg>
  );
}

/** Only files of this server are deleted when replaced. */
function ownFile(url: string | undefined): url is string {
  return !!url && !!config && url.startsWith(`${config.envUrl.replace(/\/$/, "")}/_storage/`);
}

export default function Avatar() {
  const { user, setUser } = useAuth();
  const input = useRef<HTMLInputElement>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  if (!user) return null;

  async function upload(event: ChangeEvent<HTMLInputElement>) {
    const file = event.target.files?.[0];
    event.target.value = "";
    if (!file || !user) return;
    setBusy(true);
    setError(null);
    try {
      const altogic = client();
      const uploaded = await altogic.storage.bucket("root").upload(`user_${user._id}`, file);
      const publicPath = (uploaded.data as { publicPath?: string } | null)?.publicPath;
      if (uploaded.errors || !publicPath) {
        setError(messageOf(uploaded.errors));
        return;
      }
      const previous = user.profilePicture;
      const updated = await altogic.db.model("users").object(user._id).update({ profilePicture: publicPath });
      if (updated.errors || !updated.data) {
        setError(messageOf(updated.errors));
        return;
      }
      setUser(updated.data as AppUser);
      if (ownFile(previous) && previous !== publicPath) {
        // The old picture is no longer shown anywhere; a failure here costs only disk space.
        await altogic.storage.deleteFile(previous).catch(() => undefined);
      }
    } catch {
      setError(networkMessage());
    } finally {
      setBusy(false);
    }
  }

  return (
    <div className="flex shrink-0 flex-col items-center gap-2">
      <div className="h-24 w-24 shrink-0 overflow-hidden rounded-full border border-stone-200 bg-stone-100">
        {user.profilePicture ? (
          <img src={user.profilePicture} alt="Profile picture" className="h-full w-full object-cover" data-testid="avatar-image" />
        ) : (
          <Placeholder user={user} />
        )}
      </div>
      <div className="flex flex-col items-center gap-1">
        <input ref={input} type="file" accept={ACCEPTED} className="sr-only" aria-label="Profile picture file" onChange={upload} />
        <Button variant="secondary" busy={busy} busyText="Uploading…" onClick={() => input.current?.click()}>
          {user.profilePicture ? "Change picture" : "Upload a picture"}
        </Button>
        <p className="text-xs text-stone-500">PNG, JPEG, GIF or WebP.</p>
        {error && <Alert kind="error">{error}</Alert>}
      </div>
    </div>
  );
}
