import { Link } from "react-router";
import { useAuth } from "../auth";
import { Card } from "../components/ui";

const LINKS = [
  { to: "/sign-in", title: "Sign in", text: "With your email address and password." },
  { to: "/sign-up", title: "Sign up", text: "Create an account; we email you a confirmation link." },
  { to: "/magic-link", title: "Sign in with a magic link", text: "No password: we email you a link that signs you in." },
];

export default function Home() {
  const { user } = useAuth();
  return (
    <Card title="Email & password authentication">
      <p className="mb-6 text-stone-600">
        The altogic tutorial app, unchanged, on a Basalt server.
        {user && (
          <>
            {" "}You are signed in:{" "}
            <Link to="/profile" className="font-medium underline underline-offset-4">
              go to your profile
            </Link>
            .
          </>
        )}
      </p>
      <ul className="space-y-3">
        {LINKS.map((link) => (
          <li key={link.to}>
            <Link
              to={link.to}
              className="block rounded-xl border border-stone-200 px-4 py-3 transition hover:border-stone-400 hover:bg-stone-50"
            >
              <span className="block font-medium">{link.title}</span>
              <span className="block text-sm text-stone-600">{link.text}</span>
            </Link>
          </li>
        ))}
      </ul>
    </Card>
  );
}
