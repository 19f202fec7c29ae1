/** Small building blocks shared by the pages: card, field, button, messages. */
import type { ButtonHTMLAttributes, InputHTMLAttributes, ReactNode } from "react";
import { Link, useLocation } from "react-router";

export function Card({ title, children, wide = false }: { title: string; children: ReactNode; wide?: boolean }) {
  return (
    <section
      className={`mx-auto w-full ${wide ? "max-w-2xl" : "max-w-md"} rounded-2xl border border-stone-200 bg-white p-5 shadow-sm sm:p-8`}
    >
      <h1 className="mb-6 text-2xl font-semibold tracking-tight">{title}</h1>
      {children}
    </section>
  );
}

type FieldProps = InputHTMLAttributes<HTMLInputElement> & { label: string; hint?: string };

export function Field({ label, hint, id, ...input }: FieldProps) {
  const inputId = id ?? `field-${label.toLowerCase().replace(/[^a-z]+/g, "-")}`;
  return (
    <div className="space-y-1">
      <label htmlFor={inputId} className="block text-sm font-medium text-stone-700">
        {label}
      </label>
      <input
        id={inputId}
        className="block w-full rounded-lg border border-stone-300 bg-white px-3 py-2 text-base shadow-xs outline-none focus:border-stone-500 focus:ring-2 focus:ring-stone-200 disabled:bg-stone-100"
        {...input}
      />
      {hint && <p className="text-xs text-stone-500">{hint}</p>}
    </div>
  );
}

type ButtonProps = ButtonHTMLAttributes<HTMLButtonElement> & {
  busy?: boolean;
  busyText?: string;
  variant?: "primary" | "secondary" | "danger";
};

const VARIANTS = {
  primary: "bg-stone-900 text-white hover:bg-stone-700",
  secondary: "border border-stone-300 bg-white text-stone-800 hover:bg-stone-100",
  danger: "border border-red-200 bg-white text-red-700 hover:bg-red-50",
};

export function Button({ busy = false, busyText, variant = "primary", className = "", children, disabled, ...rest }: ButtonProps) {
  return (
    <button
      className={`inline-flex shrink-0 items-center justify-center whitespace-nowrap rounded-lg px-4 py-2 text-sm font-medium transition disabled:cursor-not-allowed disabled:opacity-60 ${VARIANTS[variant]} ${className}`}
      disabled={disabled || busy}
      aria-busy={busy}
      {...rest}
    >
      {busy ? (busyText ?? "Working…") : children}
    </button>
  );
}

export function Alert({ kind, children }: { kind: "error" | "success" | "info"; children: ReactNode }) {
  const styles = {
    error: "border-red-200 bg-red-50 text-red-800",
    success: "border-emerald-200 bg-emerald-50 text-emerald-800",
    info: "border-sky-200 bg-sky-50 text-sky-900",
  }[kind];
  return (
    <div role={kind === "error" ? "alert" : "status"} className={`rounded-lg border px-3 py-2 text-sm ${styles}`}>
      {children}
    </div>
  );
}

export function TextLink({ to, children, state }: { to: string; children: ReactNode; state?: unknown }) {
  return (
    <Link to={to} state={state} className="font-medium text-stone-900 underline decoration-stone-300 underline-offset-4 hover:decoration-stone-900">
      {children}
    </Link>
  );
}

/** Messages one page hands the next through the router's location state. */
export interface Flash {
  error?: string;
  notice?: string;
  email?: string;
  token?: string;
}

export function useFlash(): Flash {
  const location = useLocation();
  return (location.state as Flash | null) ?? {};
}
