/** Shown when neither Basalt's config script nor the VITE_ variables told the app where Basalt is. */
export default function NotConfigured() {
  return (
    <main className="mx-auto max-w-xl px-4 py-16">
      <h1 className="mb-4 text-2xl font-semibold">Basalt is not configured</h1>
      <p className="mb-4 text-stone-700">
        This app gets its <code>envUrl</code> and <code>clientKey</code> from the Basalt server that serves it
        (<code>/basalt-config.js</code>). Serve the build with{" "}
        <code>basalt serve --static-dir examples/react-app/dist</code>, or, with <code>npm run dev</code>, set{" "}
        <code>VITE_BASALT_ENV_URL</code> and <code>VITE_BASALT_CLIENT_KEY</code> to what <code>basalt serve</code> prints.
      </p>
    </main>
  );
}
