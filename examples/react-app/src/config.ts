/**
 * Where the app finds Basalt. Basalt renders `/basalt-config.js` (loaded by index.html before
 * the app) with the server's own `envUrl` and a client key, so one build runs on any host.
 * Under `npm run dev`, against a Basalt started separately, the `VITE_BASALT_*` variables
 * stand in.
 */
export interface BasaltConfig {
  envUrl: string;
  clientKey: string;
  /** The dev mailbox page, when the server catches mail instead of sending it. */
  devMailbox?: string | null;
}

declare global {
  interface Window {
    BASALT_CONFIG?: BasaltConfig;
  }
}

function readConfig(): BasaltConfig | null {
  const rendered = window.BASALT_CONFIG;
  if (rendered?.envUrl && rendered.clientKey) return rendered;
  const envUrl = import.meta.env.VITE_BASALT_ENV_URL as string | undefined;
  const clientKey = import.meta.env.VITE_BASALT_CLIENT_KEY as string | undefined;
  if (envUrl && clientKey) {
    return { envUrl, clientKey, devMailbox: `${envUrl.replace(/\/$/, "")}/_dev/mailbox` };
  }
  return null;
}

export const config = readConfig();
