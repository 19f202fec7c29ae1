import { defineConfig, type Plugin } from "vite";
import react from "@vitejs/plugin-react";
import tailwindcss from "@tailwindcss/vite";

/**
 * In production Basalt renders `/basalt-config.js`. Under `npm run dev` there is no Basalt in
 * front of Vite, so answer it with an empty script: the app then falls back to the
 * `VITE_BASALT_ENV_URL` and `VITE_BASALT_CLIENT_KEY` variables (see src/config.ts).
 */
function devConfigScript(): Plugin {
  return {
    name: "basalt-dev-config-script",
    apply: "serve",
    configureServer(server) {
      server.middlewares.use("/basalt-config.js", (_req, res) => {
        res.setHeader("Content-Type", "text/javascript");
        res.end("/* npm run dev: the app reads VITE_BASALT_ENV_URL and VITE_BASALT_CLIENT_KEY */\n");
      });
    },
  };
}

export default defineConfig({
  plugins: [react(), tailwindcss(), devConfigScript()],
  // Basalt's default auth.redirect_url is http://localhost:3000/auth-redirect.
  server: { port: 3000, strictPort: true },
  build: { target: "es2022" },
});
