/** The one altogic client of the app, pointed at Basalt. */
import { createClient, type AltogicClient } from "altogic";
import { config } from "./config";

export const altogic: AltogicClient | null = config
  ? createClient(config.envUrl, config.clientKey, { signInRedirect: "/sign-in" })
  : null;

/** The client, for code that only runs once the app is configured (see App). */
export function client(): AltogicClient {
  if (!altogic) throw new Error("Basalt is not configured");
  return altogic;
}
