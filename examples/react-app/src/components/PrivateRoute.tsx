import { Navigate, Outlet, useLocation } from "react-router";
import { useAuth } from "../auth";

/** Pages for signed-in people only; everyone else goes to /sign-in. */
export default function PrivateRoute() {
  const { session } = useAuth();
  const location = useLocation();
  if (!session) return <Navigate to="/sign-in" replace state={{ from: location.pathname }} />;
  return <Outlet />;
}
