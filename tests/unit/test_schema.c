/* test_schema.c - the configuration engine on its own: a table of a made-up
 * document (no devbridge section), stored where the table says, with
 * marks, and the diagnostics every schema gets for free.  The config
 * sections themselves are tested in test_config.c. */
#include "core/schema.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"

struct item {
	char *label;
	int weight;
	struct cfg_mark mark;
};

struct entry {
	char *name;
	struct cfg_mark mark;
	int level;
	bool init_ran;
};

struct doc {
	char *title;
	int port;
	struct cfg_mark port_mark;
	struct item *items;
	size_t n_items;
	struct entry *entries;
	size_t n_entries;
	char **tags;
	size_t n_tags;
	int checks; /* times the check hook ran */
	int funcat_seen;
};

static const struct schema_field item_fields[] = {
    STR("label", F_REQ, AT(struct item, label), 0),
    INT("weight", 0, 10, AT(struct item, weight)),
};
static SCHEMA(item_schema, item_fields, NULL);

static const struct schema_field entry_fields[] = {
    {.key = "level",
     .kind = K_INT,
     .flags = F_REQ,
     .min = 1,
     .max = 3,
     .at = AT(struct entry, level)},
};
static SCHEMA(entry_schema, entry_fields, NULL);

static void entry_init(struct schema_loader *l, const yaml_node_t *key, void *elem)
{
	struct entry *e = elem;

	if (strcmp(schema_sval(key), "bad") == 0)
		schema_diag(l, key->start_mark, "entry name 'bad' is not allowed");
	if (!e)
		return;
	e->level = 2; /* a default the entry may override */
	e->init_ran = true;
	if (!(e->name = strdup(schema_sval(key))))
		schema_oom(l);
}

/* FUNCAT hands the function the member, not the whole struct. */
static void count_tags(struct schema_loader *l, yaml_node_t *val, void *slot)
{
	int *seen = slot;

	(void)l;
	(void)val;
	if (seen)
		++*seen;
}

static const struct schema_field doc_fields[] = {
    STR("title", F_REQ, AT(struct doc, title), 0),
    PORT("port", 0, AT(struct doc, port), AT(struct doc, port_mark)),
    LISTOF("items", &item_schema, AT(struct doc, items), struct item),
    NAMED("entries", "entry", &entry_schema, AT(struct doc, entries), struct entry, entry_init),
    {.key = "tags", .kind = K_STRS, .at = AT(struct doc, tags)},
    FUNCAT("counted", count_tags, AT(struct doc, funcat_seen)),
};
static SCHEMA(doc_schema, doc_fields, NULL);

static void doc_check(struct schema_loader *l, void *base)
{
	struct doc *d = base;

	d->checks++;
	if (d->port == 666)
		schema_diag_at(l, d->port_mark, "port 666 is unlucky");
}

static const struct schema_doc the_doc = {
    .file = "toy.yaml",
    .top = &doc_schema,
    .top_what = "a toy document",
    .check = doc_check,
};

static void doc_free(struct doc *d)
{
	free(d->title);
	for (size_t i = 0; i < d->n_items; i++)
		free(d->items[i].label);
	free(d->items);
	for (size_t i = 0; i < d->n_entries; i++)
		free(d->entries[i].name);
	free(d->entries);
	for (size_t i = 0; i < d->n_tags; i++)
		free(d->tags[i]);
	free(d->tags);
	memset(d, 0, sizeof *d);
}

static int load(const char *y, struct doc *d, struct cfg_diags *diags)
{
	memset(d, 0, sizeof *d);
	return schema_load(&the_doc, y, strlen(y), d, diags);
}

static void test_stored(void)
{
	static const char y[] = "title: hello\n"
				"port: 8080\n"
				"items:\n"
				"  - label: a\n"
				"  - {label: b, weight: 7}\n"
				"entries:\n"
				"  one: {level: 3}\n"
				"  two: {level: 1}\n"
				"tags: [x, y]\n"
				"counted: whatever\n";
	struct cfg_diags diags = {0};
	struct doc d;

	ASSERT_EQ(load(y, &d, &diags), 0);
	ASSERT_EQ(diags.n, 0);
	ASSERT_STR_EQ(d.title, "hello");
	ASSERT_EQ(d.port, 8080);
	ASSERT_STR_EQ(d.port_mark.file, "toy.yaml");
	ASSERT_EQ(d.port_mark.line, 2);
	ASSERT_EQ(d.port_mark.col, 7);
	ASSERT_EQ(d.n_items, 2);
	ASSERT_STR_EQ(d.items[1].label, "b");
	ASSERT_EQ(d.items[1].weight, 7);
	ASSERT_EQ(d.items[1].mark.line, 5);
	ASSERT_EQ(d.n_entries, 2);
	ASSERT_STR_EQ(d.entries[0].name, "one");
	ASSERT_EQ(d.entries[0].level, 3);
	ASSERT(d.entries[1].init_ran);
	ASSERT_EQ(d.entries[1].mark.line, 8); /* the name's */
	ASSERT_EQ(d.entries[1].mark.col, 3);
	ASSERT_EQ(d.n_tags, 2);
	ASSERT(d.tags[2] == NULL);
	ASSERT_EQ(d.funcat_seen, 1);
	ASSERT_EQ(d.checks, 1);
	doc_free(&d);
}

static void expect(const struct cfg_diags *diags, const char *needle, int line, int col)
{
	for (size_t i = 0; i < diags->n; i++)
		if (strstr(diags->items[i].msg, needle)) {
			ASSERT_STR_EQ(diags->items[i].mark.file, "toy.yaml");
			ASSERT_EQ(diags->items[i].mark.line, line);
			ASSERT_EQ(diags->items[i].mark.col, col);
			return;
		}
	for (size_t i = 0; i < diags->n; i++)
		fprintf(stderr, "  have %d:%d: %s\n", diags->items[i].mark.line,
			diags->items[i].mark.col, diags->items[i].msg);
	TEST_FAIL_("no diagnostic contains \"%s\"", needle);
}

/* Every mistake at once, each where it is; the check hook still runs. */
static void test_diagnostics(void)
{
	static const char y[] = "port: 666\n"
				"itemz: []\n"
				"items:\n"
				"  - weight: 11\n"
				"entries:\n"
				"  bad: {level: 2}\n"
				"  ok: {}\n";
	struct cfg_diags diags = {0};
	struct doc d;

	ASSERT_EQ(load(y, &d, &diags), -EINVAL);
	expect(&diags, "missing required field 'title'", 1, 1);
	expect(&diags, "unknown key 'itemz' (did you mean 'items'?)", 2, 1);
	expect(&diags, "items[0]: missing required field 'label'", 4, 5);
	expect(&diags, "items[0].weight: expected an integer 0-10, got \"11\"", 4, 13);
	expect(&diags, "entry name 'bad' is not allowed", 6, 3);
	expect(&diags, "entry 'ok': missing required field 'level'", 7, 3);
	expect(&diags, "port 666 is unlucky", 1, 7);
	ASSERT_EQ(diags.n, 7);
	ASSERT_EQ(d.checks, 1);
	doc_free(&d);
	cfg_diags_clear(&diags);
}

static void test_document_shape(void)
{
	struct cfg_diags diags = {0};
	struct doc d;

	ASSERT_EQ(load("- a list\n", &d, &diags), -EINVAL);
	expect(&diags, "expected a toy document at the top level, got a list", 1, 1);
	ASSERT_EQ(d.checks, 0);
	cfg_diags_clear(&diags);
	/* nothing at all is a valid, empty document */
	ASSERT_EQ(load("# only a comment\n", &d, &diags), 0);
	ASSERT_EQ(diags.n, 0);
	ASSERT_EQ(load("title: t\n---\ntitle: u\n", &d, &diags), -EINVAL);
	expect(&diags, "a second YAML document", 3, 1);
	doc_free(&d);
	cfg_diags_clear(&diags);
	char deep[200];
	memset(deep, '[', sizeof deep - 1);
	deep[sizeof deep - 1] = '\0';
	ASSERT_EQ(load(deep, &d, &diags), -EINVAL);
	expect(&diags, "nested more than 64 levels deep", 1, 65);
	cfg_diags_clear(&diags);
}

static void test_read_file(void)
{
	struct cfg_diags diags = {0};
	char *buf = NULL;
	size_t len = 0;

	ASSERT_EQ(schema_read_file("/nonexistent/x.yaml", &buf, &len, &diags), -ENOENT);
	ASSERT_EQ(diags.n, 1);
	ASSERT_EQ(diags.items[0].mark.line, 0);
	ASSERT_STR_CONTAINS(diags.items[0].msg, "cannot read");
	cfg_diags_clear(&diags);
	ASSERT_EQ(schema_read_file(SRCDIR "/tests/unit/test_schema.c", &buf, &len, &diags), 0);
	ASSERT(len > 100 && buf);
	free(buf);
}

/* How every diagnostic is printed and carried (core/diag.h). */
static void test_diag_format(void)
{
	struct cfg_diags d = {0};
	char buf[CFG_DIAG_LINE_MAX], small[12];

	ASSERT_EQ(cfg_diag_add(&d, (struct cfg_mark){"a.yaml", 3, 7}, "bad %s", "x"), 0);
	ASSERT_EQ(cfg_diag_add(&d, (struct cfg_mark){"b.yaml", 0, 0}, "a link"), 0);
	ASSERT_STR_EQ(cfg_diag_format(buf, sizeof buf, d.items[0].mark, "%s", d.items[0].msg),
		      "a.yaml:3:7: bad x");
	ASSERT_STR_EQ(
	    cfg_diag_format(buf, sizeof buf, d.items[1].mark, "warning: %s", d.items[1].msg),
	    "b.yaml: warning: a link");
	ASSERT_STR_EQ(cfg_diag_format(small, sizeof small, d.items[0].mark, "%s", d.items[0].msg),
		      "a.yaml:3:7:");
	json_t *a = cfg_diags_json(&d);
	char *text = json_dumps(a, JSON_COMPACT);
	ASSERT_STR_EQ(text,
		      "[{\"file\":\"a.yaml\",\"line\":3,\"column\":7,\"message\":\"bad x\"},"
		      "{\"file\":\"b.yaml\",\"line\":0,\"column\":0,\"message\":\"a link\"}]");
	free(text);
	json_decref(a);
	cfg_diags_clear(&d);
}

int main(void)
{
	RUN(test_diag_format);
	RUN(test_stored);
	RUN(test_diagnostics);
	RUN(test_document_shape);
	RUN(test_read_file);
	return 0;
}
