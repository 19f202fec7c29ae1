// The database API over declared models (protocol.md §5), driven through `client.db.model(…)`
// exactly as an app calls it: object calls, the query builder, compute, random picks, lookups,
// the access rules of each model and the errors the client passes through.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { startServer } from "../support/server.mjs";
import { ISO_MS_RE, OBJECT_ID_RE, QUICK, expectError, expectOk, newClient, signUpWithSession } from "../support/helpers.mjs";

const VERIFICATION_OFF = { BASALT_AUTH__EMAIL_VERIFICATION: "false" };

// todos: each user's own; posts, orders, teams, members: everyone reads, the author writes.
const MODELS = `
[[database.models]]
name = "todos"
access = "owner"
indexes = ["priority"]

[database.models.fields.title]
type = "string"
required = true

[database.models.fields.done]
type = "boolean"
default = false

[database.models.fields.slug]
type = "string"
unique = true

[database.models.fields.priority]
type = "integer"

[[database.models]]
name = "posts"
access = "public_read"

[[database.models]]
name = "orders"
access = "public_read"

[[database.models]]
name = "teams"
access = "public_read"

[[database.models]]
name = "members"
access = "public_read"
`;

const MISSING_ID = "000000000000000000000000";
const UNKNOWN_LOOKUP = { name: "x", modelName: "nope", query: "lookup.a == this._id" };

/** One server with the models above; `server()` inside tests. */
function modelsServer() {
  let server;
  before(async () => {
    server = await startServer({ env: VERIFICATION_OFF, config: MODELS });
  });
  after(() => server?.close());
  return () => server;
}

/** The call succeeded; returns its data. */
function ok(result, what) {
  expectOk(result, what);
  return result.data;
}

const titles = (list) => list.map((todo) => todo.title);

/** 12 todos "task 01"…"task 12": priority i % 3, done when i % 4 == 0, tag "even" on even i. */
async function seedTodos(client) {
  const values = Array.from({ length: 12 }, (_, k) => {
    const i = k + 1;
    return { title: `task ${String(i).padStart(2, "0")}`, priority: i % 3, done: i % 4 === 0, tags: i % 2 ? [] : ["even"] };
  });
  const created = ok(await client.db.model("todos").create(values), "seeding todos");
  assert.equal(created.length, 12);
  return created;
}

// ---------------------------------------------------------------------------------------------

describe("models: object calls", () => {
  const server = modelsServer();
  let todos;
  before(async () => {
    todos = (await signUpWithSession(server())).client.db.model("todos");
  });

  test("create answers the object with _id, defaults and createdAt; get reads it back", QUICK, async () => {
    const created = ok(await todos.object().create({ title: "Write tests", _id: "ignored" }), "create");

    assert.match(created._id, OBJECT_ID_RE, "the server picks the _id");
    assert.equal(created.title, "Write tests");
    assert.equal(created.done, false, "the declared default is applied");
    assert.match(created.createdAt, ISO_MS_RE);
    assert.deepEqual(ok(await todos.object(created._id).get(), "get"), created);
  });

  test("get of an id that does not exist answers null, not an error", QUICK, async () => {
    assert.equal(ok(await todos.object(MISSING_ID).get(), "get of a missing id"), null);
  });

  test("update merges the values and answers the whole object", QUICK, async () => {
    const { _id } = ok(await todos.object().create({ title: "Merge me", priority: 1 }));

    const updated = ok(await todos.object(_id).update({ done: true, note: "free field" }), "update");

    assert.equal(updated._id, _id);
    assert.equal(updated.title, "Merge me", "fields not written are kept");
    assert.equal(updated.priority, 1);
    assert.equal(updated.done, true);
    assert.equal(updated.note, "free field", "undeclared fields are stored as they come");
    assert.equal(ok(await todos.object(_id).get()).done, true);
  });

  test("updateFields: increment, push, max, unset and decrement answer the whole object", QUICK, async () => {
    const { _id } = ok(await todos.object().create({ title: "Counters", priority: 1, note: "bye" }));

    const first = ok(await todos.object(_id).updateFields({ field: "priority", updateType: "increment", value: 2 }));
    assert.equal(first.priority, 3);
    assert.equal(first.title, "Counters", "the whole object comes back");

    const second = ok(
      await todos.object(_id).updateFields([
        { field: "tags", updateType: "push", value: "x" },
        { field: "score", updateType: "max", value: 7 },
        { field: "note", updateType: "unset" },
        { field: "priority", updateType: "decrement", value: 1 },
      ]),
      "several updateFields at once",
    );
    assert.deepEqual(second.tags, ["x"]);
    assert.equal(second.score, 7, "max on a missing field sets the value");
    assert.ok(!("note" in second), "unset removes the field");
    assert.equal(second.priority, 2);
  });

  test("delete answers null; the object is gone and a second delete is object_not_found", QUICK, async () => {
    const { _id } = ok(await todos.object().create({ title: "Short-lived" }));

    assert.equal(ok(await todos.object(_id).delete(), "delete"), null);
    assert.equal(ok(await todos.object(_id).get()), null);
    expectError(await todos.object(_id).delete(), "object_not_found", 400);
  });

  test("declared fields are enforced: required, types and unique values, with the field named", QUICK, async () => {
    const missing = expectError(await todos.object().create({ done: true }), "validation_error", 400);
    assert.equal(missing.details?.field, "title");
    const wrongType = expectError(await todos.object().create({ title: "x", priority: 1.5 }), "validation_error", 400);
    assert.equal(wrongType.details?.field, "priority");

    ok(await todos.object().create({ title: "a", slug: "same" }));
    const taken = expectError(await todos.object().create({ title: "b", slug: "same" }), "not_unique", 400);
    assert.equal(taken.details?.field, "slug");
  });
});

describe("models: the query builder", () => {
  const server = modelsServer();
  /** A new user with 12 seeded todos (todos are per user, so tests do not see each other's). */
  async function seeded() {
    const { client } = await signUpWithSession(server());
    await seedTodos(client);
    return client.db;
  }

  test("filter and sort: priority >= 2 && !done, newest title first", QUICK, async () => {
    const db = await seeded();
    // priority 2: tasks 2, 5, 8, 11; task 8 is done.
    const list = ok(await db.model("todos").filter("priority >= 2 && !done").sort("title", "desc").get());
    assert.deepEqual(titles(list), ["task 11", "task 05", "task 02"]);
  });

  test("limit, page and get(true): one page plus countInfo; omit drops fields", QUICK, async () => {
    const db = await seeded();
    const page = ok(
      await db.model("todos").filter("IN(this.tags, 'even')").sort("title", "asc").limit(4).page(2).omit("tags", "priority").get(true),
    );

    assert.deepEqual(page.countInfo, { count: 6, totalPages: 2, currentPage: 2, pageSize: 4 });
    assert.deepEqual(titles(page.result), ["task 10", "task 12"]);
    assert.ok(!("tags" in page.result[0]) && !("priority" in page.result[0]), "omitted fields are gone");
    assert.equal(page.result[0].done, false, "other fields stay");

    const beyond = ok(await db.model("todos").limit(5).page(9).get(true));
    assert.deepEqual(beyond.result, [], "a page past the end is empty");
    assert.equal(beyond.countInfo.count, 12);
  });

  test("getSingle answers the first match, or null", QUICK, async () => {
    const db = await seeded();
    assert.equal(ok(await db.model("todos").filter("INCLUDES(title, '05')").getSingle()).title, "task 05");
    assert.equal(ok(await db.model("todos").filter("title == 'nope'").getSingle()), null);
  });

  test("create([...]) answers the objects in order, and is all-or-nothing on a unique clash", QUICK, async () => {
    const { client } = await signUpWithSession(server());
    const todos = client.db.model("todos");

    const created = ok(await todos.create([{ title: "one", slug: "s-1" }, { title: "two", slug: "s-2" }]));
    assert.deepEqual(titles(created), ["one", "two"]);

    const clash = await todos.create([{ title: "three", slug: "s-3" }, { title: "four", slug: "s-1" }]);
    expectError(clash, "not_unique", 400);
    assert.deepEqual(titles(ok(await todos.sort("title", "asc").get())), ["one", "two"], "nothing of the batch was kept");
  });

  test("update, updateFields and delete with a filter answer totalMatch and updated/deleted", QUICK, async () => {
    const db = await seeded();

    assert.deepEqual(ok(await db.model("todos").filter("priority == 0").update({ done: true })), { totalMatch: 4, updated: 4 });
    // done now: 4, 8, 12 from the seed and 3, 6, 9 (priority 0).
    const bumped = ok(await db.model("todos").filter("done").updateFields({ field: "priority", updateType: "increment", value: 10 }));
    assert.equal(bumped.totalMatch, 6);
    assert.equal(bumped.updated, 6);
    assert.equal(ok(await db.model("todos").filter("priority >= 10").get(true)).countInfo.count, 6);

    assert.deepEqual(ok(await db.model("todos").filter("priority >= 10").delete()), { totalMatch: 6, deleted: 6 });
    assert.equal(ok(await db.model("todos").get()).length, 6, "the others are still there");
  });
});

describe("models: compute, getRandom and lookups", () => {
  const server = modelsServer();
  let alice;
  let bob;
  before(async () => {
    alice = await signUpWithSession(server(), { name: "Alice" });
    bob = await signUpWithSession(server(), { name: "Bob" });
    const orders = [["apple", 2], ["apple", 3], ["pear", 1], ["plum", 4]].map(([product, qty]) => ({ product, qty }));
    ok(await alice.client.db.model("orders").create(orders), "seeding orders");
  });

  test("group([...]).compute(...) answers one row per group, sorted by the sum", QUICK, async () => {
    const rows = await bob.client.db
      .model("orders")
      .group(["product"])
      .compute([
        { name: "units", type: "sum", expression: "qty", sort: "desc" },
        { name: "n", type: "count" },
      ]);

    assert.deepEqual(ok(rows), [
      { groupby: { product: "apple" }, units: 5, n: 2 },
      { groupby: { product: "plum" }, units: 4, n: 1 },
      { groupby: { product: "pear" }, units: 1, n: 1 },
    ]);
  });

  test("compute without group: one row over every match, groupby null", QUICK, async () => {
    const rows = await bob.client.db
      .model("orders")
      .filter("product != 'plum'")
      .compute([{ name: "n", type: "count" }, { name: "most", type: "max", expression: "qty" }]);

    assert.deepEqual(ok(rows), [{ groupby: null, n: 3, most: 3 }]);
  });

  test("getRandom(2) answers two distinct matching objects", QUICK, async () => {
    const picked = ok(await bob.client.db.model("orders").filter("product != 'plum'").getRandom(2));

    assert.equal(picked.length, 2);
    assert.notEqual(picked[0]._id, picked[1]._id);
    for (const order of picked) assert.notEqual(order.product, "plum");
    assert.equal(ok(await bob.client.db.model("orders").getRandom(50)).length, 4, "at most every match");
  });

  test("lookups: a simple one replaces an id, a complex one feeds EXISTS(...) in the filter", QUICK, async () => {
    const db = alice.client.db;
    const [red, blue, green] = ok(await db.model("teams").create([{ title: "red", rank: 2 }, { title: "blue", rank: 1 }, { title: "green", rank: 3 }]));
    const [member] = ok(
      await db.model("members").create([
        { user: alice.user._id, team: red._id, role: "admin" },
        { user: alice.user._id, team: blue._id, role: "guest" },
      ]),
    );

    const viaObject = ok(await bob.client.db.model("members").object(member._id).get([{ field: "team" }]));
    assert.equal(viaObject.team._id, red._id, "object(id).get([{ field }]) swaps the id for the object");
    assert.equal(viaObject.team.title, "red");

    const viaQuery = ok(await bob.client.db.model("members").lookup({ field: "team" }).sort("role", "asc").get());
    assert.deepEqual(viaQuery.map((m) => m.team.title), ["red", "blue"]);

    const membership = { name: "membership", modelName: "members", query: "lookup.team == this._id" };
    const mine = ok(await db.model("teams").lookup(membership).filter("EXISTS(membership)").sort("rank", "asc").get());
    assert.deepEqual(titles(mine), ["blue", "red"]);
    assert.equal(mine[1].membership.role, "admin", "the first matching object is put under the name");

    const others = ok(await db.model("teams").lookup(membership).filter("!EXISTS(membership)").get());
    assert.deepEqual(titles(others), [green.title]);
    assert.ok(!("membership" in others[0]), "no match: the field is omitted");
  });
});

describe("models: access rules", () => {
  const server = modelsServer();
  let ada;
  let eve;
  let adaTodo;
  before(async () => {
    ada = await signUpWithSession(server(), { name: "Ada" });
    eve = await signUpWithSession(server(), { name: "Eve" });
    adaTodo = ok(await ada.client.db.model("todos").object().create({ title: "Mine", priority: 3 }));
    ok(await ada.client.db.model("todos").create([{ title: "Also mine", priority: 4 }]));
    ok(await eve.client.db.model("todos").create({ title: "Eve's", priority: 40 }));
  });

  test("another user cannot see or touch an owner model's object", QUICK, async () => {
    const todos = eve.client.db.model("todos");

    assert.equal(ok(await todos.object(adaTodo._id).get()), null, "get answers null, as for a missing id");
    expectError(await todos.object(adaTodo._id).update({ title: "Theirs" }), "object_not_found", 400);
    expectError(await todos.object(adaTodo._id).updateFields({ field: "priority", updateType: "increment", value: 1 }), "object_not_found", 400);
    expectError(await todos.object(adaTodo._id).delete(), "object_not_found", 400);

    const still = ok(await ada.client.db.model("todos").object(adaTodo._id).get());
    assert.equal(still.title, "Mine");
    assert.equal(still.priority, 3);
  });

  test("queries and bulk writes see only one's own objects; compute sums only them", QUICK, async () => {
    const todos = () => eve.client.db.model("todos");

    assert.deepEqual(titles(ok(await todos().get())), ["Eve's"]);
    assert.equal(ok(await todos().filter("title == 'Mine'").get(true)).countInfo.count, 0);
    assert.deepEqual(ok(await todos().filter("title == 'Mine'").delete()), { totalMatch: 0, deleted: 0 });
    assert.deepEqual(ok(await todos().compute({ name: "total", type: "sum", expression: "priority" })), [{ groupby: null, total: 40 }]);
    assert.deepEqual(
      ok(await ada.client.db.model("todos").compute({ name: "total", type: "sum", expression: "priority" })),
      [{ groupby: null, total: 7 }],
    );
  });

  test("without a session: owner models read as empty and refuse writes with missing_session_token", QUICK, async () => {
    const anonymous = newClient(server()).db.model("todos");

    assert.equal(ok(await anonymous.object(adaTodo._id).get()), null);
    assert.deepEqual(ok(await anonymous.get()), []);
    expectError(await anonymous.object().create({ title: "anon" }), "missing_session_token", 401);
  });

  test("public_read: anyone reads, only the author writes; bulk writes touch one's own only", QUICK, async () => {
    const post = ok(await ada.client.db.model("posts").object().create({ title: "Hello" }));
    ok(await eve.client.db.model("posts").object().create({ title: "Eve's post" }));

    assert.equal(ok(await newClient(server()).db.model("posts").object(post._id).get()).title, "Hello", "anonymous read");
    assert.equal(ok(await eve.client.db.model("posts").object(post._id).get()).title, "Hello", "another user's read");
    expectError(await eve.client.db.model("posts").object(post._id).update({ title: "Hijacked" }), "not_allowed", 403);
    expectError(await eve.client.db.model("posts").object(post._id).delete(), "not_allowed", 403);

    assert.deepEqual(ok(await eve.client.db.model("posts").update({ title: "Edited" })), { totalMatch: 1, updated: 1 });
    const all = ok(await newClient(server()).db.model("posts").sort("title", "asc").get());
    assert.deepEqual(titles(all), ["Edited", "Hello"], "Ada's post is untouched");
  });
});

describe("models: errors and the users model", () => {
  const server = modelsServer();
  let ada;
  let other;
  before(async () => {
    ada = await signUpWithSession(server(), { name: "Ada" });
    other = await signUpWithSession(server(), { name: "Ada" });
    ok(await other.client.db.model("users").object(other.user._id).update({ profilePicture: "http://x.test/a.png", city: "Paris" }));
  });

  test("an unknown model answers model_not_found, for object calls and queries alike", QUICK, async () => {
    expectError(await ada.client.db.model("orders2").object().create({ title: "x" }), "model_not_found", 400);
    expectError(await ada.client.db.model("orders2").filter("a == 1").get(), "model_not_found", 400);
    ok(await ada.client.db.model("posts").object().create({ title: "a post to join from" }));
    expectError(await ada.client.db.model("posts").lookup(UNKNOWN_LOOKUP).get(), "model_not_found", 400);
  });

  test("a lookup into an unknown model answers model_not_found even when nothing is there to join", QUICK, async () => {
    expectError(await ada.client.db.model("teams").lookup(UNKNOWN_LOOKUP).get(), "model_not_found", 400);
    expectError(await ada.client.db.model("teams").object(MISSING_ID).get([UNKNOWN_LOOKUP]), "model_not_found", 400);
  });

  test("a malformed filter answers invalid_expression with the position; unknown functions are named", QUICK, async () => {
    const invalid = expectError(await ada.client.db.model("posts").filter("title == ").get(), "invalid_expression", 400);
    assert.equal(typeof invalid.details?.position, "number", `position in details: ${JSON.stringify(invalid)}`);
    expectError(await ada.client.db.model("posts").filter("(priority > 1").get(), "invalid_expression", 400);
    expectError(await ada.client.db.model("posts").filter("DATEDIFF(a, b) > 1").get(), "unsupported_function", 400);
    assert.ok(ada.client.auth.getSession(), "a refused query does not sign the caller out");
  });

  test("users: a query shows others' public view (_id, name, profilePicture) and one's own whole record", QUICK, async () => {
    const found = ok(await ada.client.db.model("users").filter("name == 'Ada'").get());

    assert.equal(found.length, 2);
    const own = found.find((user) => user._id === ada.user._id);
    const theirs = found.find((user) => user._id === other.user._id);
    assert.equal(own.email, ada.email, "one's own record is whole");
    assert.ok(!("password" in own), "never a password");
    assert.deepEqual(theirs, { _id: other.user._id, name: "Ada", profilePicture: "http://x.test/a.png" });
    assert.deepEqual(ok(await ada.client.db.model("users").filter("city == 'Paris'").get()), [], "private fields never match others");
  });

  test("users: writes go through object calls; a bulk delete is refused with not_supported", QUICK, async () => {
    expectError(await ada.client.db.model("users").filter("name == 'Ada'").delete(), "not_supported", 400);
    assert.equal(ok(await other.client.db.model("users").object(other.user._id).get()).name, "Ada");
  });
});
