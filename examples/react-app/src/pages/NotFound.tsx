import { Card, TextLink } from "../components/ui";

export default function NotFound() {
  return (
    <Card title="Page not found">
      <p className="text-stone-600">
        There is nothing here. <TextLink to="/">Go to the start page</TextLink>
      </p>
    </Card>
  );
}
