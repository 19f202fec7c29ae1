import { Link, Outlet } from "react-router";
import { useAuth } from "../auth";

export default function Layout() {
  const { user } = useAuth();
  return (
    <div className="flex min-h-dvh flex-col">
      <header className="border-b border-stone-200 bg-white">
        <nav className="mx-auto flex max-w-4xl items-center justify-between gap-4 px-4 py-3">
          <Link to="/" className="flex items-center gap-2 font-semibold">
            <img src="/favicon.svg" alt="" className="h-7 w-7" />
            <span>Basalt example</span>
          </Link>
          {user ? (
            <Link to="/profile" className="truncate text-sm text-stone-600 hover:text-stone-900">
              {user.name || user.email}
            </Link>
          ) : (
            <Link to="/sign-in" className="text-sm text-stone-600 hover:text-stone-900">
              Sign in
            </Link>
          )}
        </nav>
      </header>
      <main className="flex-1 px-4 py-8 sm:py-12">
        <Outlet />
      </main>
      <footer className="px-4 py-6 text-center text-xs text-stone-500">
        An altogic app running unchanged on Basalt.
      </footer>
    </div>
  );
}
