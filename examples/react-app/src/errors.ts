import type { APIError } from "altogic";

/** What to show for a failed call: the server's messages, one after another. */
export function messageOf(errors: APIError | null | undefined): string {
  const items = errors?.items ?? [];
  const messages = items.map((item) => item.message).filter(Boolean);
  if (messages.length > 0) return messages.join(" ");
  return "Something went wrong. Please try again.";
}

/** Whether any entry of a failed call carries this code. */
export function hasCode(errors: APIError | null | undefined, code: string): boolean {
  return (errors?.items ?? []).some((item) => item.code === code);
}

/** For calls that reject (network down, server unreachable). */
export function networkMessage(): string {
  return "The server cannot be reached. Check your connection and try again.";
}
