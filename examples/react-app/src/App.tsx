import { Route, Routes } from "react-router";
import { altogic } from "./altogic";
import { AuthProvider } from "./auth";
import Layout from "./components/Layout";
import PrivateRoute from "./components/PrivateRoute";
import AuthRedirect from "./pages/AuthRedirect";
import ForgotPassword from "./pages/ForgotPassword";
import Home from "./pages/Home";
import MagicLink from "./pages/MagicLink";
import NotConfigured from "./pages/NotConfigured";
import NotFound from "./pages/NotFound";
import Profile from "./pages/Profile";
import ResendVerification from "./pages/ResendVerification";
import ResetPassword from "./pages/ResetPassword";
import SignIn from "./pages/SignIn";
import SignUp from "./pages/SignUp";

export default function App() {
  if (!altogic) return <NotConfigured />;
  return (
    <AuthProvider>
      <Routes>
        <Route element={<Layout />}>
          <Route index element={<Home />} />
          <Route path="sign-in" element={<SignIn />} />
          <Route path="sign-up" element={<SignUp />} />
          <Route path="magic-link" element={<MagicLink />} />
          <Route path="auth-redirect" element={<AuthRedirect />} />
          <Route path="forgot-password" element={<ForgotPassword />} />
          <Route path="reset-password" element={<ResetPassword />} />
          <Route path="resend-verification" element={<ResendVerification />} />
          <Route element={<PrivateRoute />}>
            <Route path="profile" element={<Profile />} />
          </Route>
          <Route path="*" element={<NotFound />} />
        </Route>
      </Routes>
    </AuthProvider>
  );
}
