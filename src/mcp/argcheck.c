/* argcheck.c - see argcheck.h.  Messages name the argument and say what
 * was expected and what came, in words a model can act on. */
#include "mcp/argcheck.h"
#include "core/util.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const annotations[] = {"title",    "description", "default",
					  "examples", "$schema",     NULL};

static bool in_list(const char *key, const char *const *list)
{
	for (; *list; list++)
		if (strcmp(key, *list) == 0)
			return true;
	return false;
}

/* The keywords a value schema of `type` may carry. */
static const char *const *keywords_of(const char *type)
{
	static const char *const s[] = {"type", "enum", "minLength", "maxLength", NULL};
	static const char *const num[] = {"type", "enum", "minimum", "maximum", NULL};
	static const char *const b[] = {"type", NULL};
	static const char *const arr[] = {"type", "items", "minItems", "maxItems", NULL};
	if (strcmp(type, "string") == 0)
		return s;
	if (strcmp(type, "integer") == 0 || strcmp(type, "number") == 0)
		return num;
	if (strcmp(type, "boolean") == 0)
		return b;
	if (strcmp(type, "array") == 0)
		return arr;
	return NULL;
}

static int fail(char *msg, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *msg, size_t n, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, n, fmt, ap);
	va_end(ap);
	return -1;
}

static int value_schema_ok(const json_t *s, const char *where, bool in_array, char *msg, size_t n)
{
	if (!json_is_object(s))
		return fail(msg, n, "%s: not an object", where);
	const char *type = json_string_value(json_object_get(s, "type"));
	if (!type)
		return fail(msg, n, "%s: no \"type\" string", where);
	const char *const *kw = keywords_of(type);
	if (!kw || (in_array && strcmp(type, "array") == 0))
		return fail(msg, n, "%s: type '%s' is not supported", where, type);
	const char *key;
	json_t *v;
	json_object_foreach((json_t *)s, key, v)
	{
		if (!in_list(key, kw) && !in_list(key, annotations))
			return fail(msg, n, "%s: keyword '%s' is not supported", where, key);
		if ((strcmp(key, "minimum") == 0 || strcmp(key, "maximum") == 0) &&
		    !json_is_number(v))
			return fail(msg, n, "%s: '%s' is not a number", where, key);
		if ((strcmp(key, "minLength") == 0 || strcmp(key, "maxLength") == 0 ||
		     strcmp(key, "minItems") == 0 || strcmp(key, "maxItems") == 0) &&
		    (!json_is_integer(v) || json_integer_value(v) < 0))
			return fail(msg, n, "%s: '%s' is not a count", where, key);
		if (strcmp(key, "enum") == 0 && (!json_is_array(v) || json_array_size(v) == 0))
			return fail(msg, n, "%s: '%s' is not a non-empty array", where, key);
	}
	if (strcmp(type, "array") == 0) {
		json_t *items = json_object_get(s, "items");
		if (!items)
			return fail(msg, n, "%s: an array without \"items\"", where);
		char w[256];
		snprintf(w, sizeof w, "%s.items", where);
		return value_schema_ok(items, w, true, msg, n);
	}
	return 0;
}

int argcheck_schema_ok(const json_t *schema, char *msg, size_t n)
{
	static const char *const root_kw[] = {"type", "properties", "required",
					      "additionalProperties", NULL};
	if (!json_is_object(schema))
		return fail(msg, n, "inputSchema: not an object");
	const char *type = json_string_value(json_object_get(schema, "type"));
	if (!type || strcmp(type, "object") != 0)
		return fail(msg, n, "inputSchema: type must be \"object\"");
	const char *key;
	json_t *v;
	json_object_foreach((json_t *)schema, key, v)
	{
		if (!in_list(key, root_kw) && !in_list(key, annotations))
			return fail(msg, n, "%s: keyword '%s' is not supported", "inputSchema",
				    key);
	}
	json_t *props = json_object_get(schema, "properties");
	if (props && !json_is_object(props))
		return fail(msg, n, "inputSchema: properties is not an object");
	json_object_foreach(props, key, v)
	{
		char w[256];
		snprintf(w, sizeof w, "properties.%s", key);
		if (value_schema_ok(v, w, false, msg, n) < 0)
			return -1;
	}
	json_t *req = json_object_get(schema, "required");
	if (req && !json_is_array(req))
		return fail(msg, n, "inputSchema: required is not an array");
	size_t i;
	json_array_foreach(req, i, v)
	{
		if (!json_is_string(v) || !json_object_get(props, json_string_value(v)))
			return fail(msg, n, "inputSchema: required names an undeclared property");
	}
	json_t *ap = json_object_get(schema, "additionalProperties");
	if (ap && !json_is_boolean(ap))
		return fail(msg, n, "inputSchema: additionalProperties must be true or false");
	return 0;
}

static const char *type_name(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return "an object";
	case JSON_ARRAY:
		return "an array";
	case JSON_STRING:
		return "a string";
	case JSON_INTEGER:
		return "an integer";
	case JSON_REAL:
		return "a number";
	case JSON_TRUE:
	case JSON_FALSE:
		return "a boolean";
	case JSON_NULL:
		return "null";
	}
	return "?";
}

static bool has_type(const json_t *v, const char *type)
{
	if (strcmp(type, "string") == 0)
		return json_is_string(v);
	if (strcmp(type, "integer") == 0)
		return json_is_integer(v); /* 3.0 too is a JSON Schema integer, but
					    * not one json_integer_value reads */
	if (strcmp(type, "number") == 0)
		return json_is_number(v);
	if (strcmp(type, "boolean") == 0)
		return json_is_boolean(v);
	return strcmp(type, "array") == 0 && json_is_array(v);
}

/* enum's values as "'a', 'b'" for the message. */
static void list_enum(const json_t *e, char *buf, size_t n)
{
	size_t i, off = 0;
	json_t *x;
	buf[0] = '\0';
	json_array_foreach(e, i, x)
	{
		char *s = json_dumps(x, JSON_ENCODE_ANY | JSON_COMPACT);
		int w = snprintf(buf + off, n - off, "%s%s", i ? ", " : "", s ? s : "?");
		free(s);
		if (w < 0 || (size_t)w >= n - off)
			break;
		off += (size_t)w;
	}
}

static int check_value(const json_t *s, const json_t *v, const char *name, char *msg, size_t n)
{
	const char *type = json_string_value(json_object_get(s, "type"));
	if (!has_type(v, type)) {
		snprintf(msg, n, "argument '%s': expected %s %s, got %s", name,
			 strcmp(type, "integer") == 0 || strcmp(type, "array") == 0 ? "an" : "a",
			 type, type_name(v));
		return -1;
	}
	json_t *e = json_object_get(s, "enum");
	if (e) {
		size_t i;
		json_t *x;
		bool found = false;
		json_array_foreach(e, i, x) found = found || json_equal(x, (json_t *)v);
		if (!found) {
			char list[512];
			list_enum(e, list, sizeof list);
			snprintf(msg, n, "argument '%s': must be one of %s", name, list);
			return -1;
		}
	}
	json_t *lo = json_object_get(s, "minimum"), *hi = json_object_get(s, "maximum");
	if (json_is_number(v) && ((lo && json_number_value(v) < json_number_value(lo)) ||
				  (hi && json_number_value(v) > json_number_value(hi)))) {
		char range[128];
		if (lo && hi)
			snprintf(range, sizeof range, "between %g and %g", json_number_value(lo),
				 json_number_value(hi));
		else
			snprintf(range, sizeof range, "%s %g", lo ? "at least" : "at most",
				 json_number_value(lo ? lo : hi));
		snprintf(msg, n, "argument '%s': must be %s, got %g", name, range,
			 json_number_value(v));
		return -1;
	}
	size_t len = json_is_string(v) ? json_string_length(v) : json_array_size(v);
	const char *unit = json_is_string(v) ? "bytes" : "items";
	json_t *mn = json_object_get(s, json_is_string(v) ? "minLength" : "minItems");
	json_t *mx = json_object_get(s, json_is_string(v) ? "maxLength" : "maxItems");
	if ((json_is_string(v) || json_is_array(v)) &&
	    ((mn && len < (size_t)json_integer_value(mn)) ||
	     (mx && len > (size_t)json_integer_value(mx)))) {
		snprintf(msg, n, "argument '%s': %zu %s, expected %s %lld", name, len, unit,
			 mn && len < (size_t)json_integer_value(mn) ? "at least" : "at most",
			 (long long)json_integer_value(
			     mn && len < (size_t)json_integer_value(mn) ? mn : mx));
		return -1;
	}
	if (json_is_array(v)) {
		json_t *items = json_object_get(s, "items");
		size_t i;
		json_t *x;
		json_array_foreach(v, i, x)
		{
			char w[256];
			snprintf(w, sizeof w, "%s[%zu]", name, i);
			if (check_value(items, x, w, msg, n) < 0)
				return -1;
		}
	}
	return 0;
}

int argcheck(const json_t *schema, const json_t *args, char *msg, size_t n)
{
	json_t *props = json_object_get(schema, "properties");
	json_t *req = json_object_get(schema, "required");
	size_t i;
	json_t *v;
	json_array_foreach(req, i, v)
	{
		const char *name = json_string_value(v);
		if (!json_object_get(args, name)) {
			snprintf(msg, n, "argument '%s' is required", name);
			return -1;
		}
	}
	bool closed = json_is_false(json_object_get(schema, "additionalProperties"));
	const char *key;
	json_object_foreach((json_t *)args, key, v)
	{
		json_t *s = json_object_get(props, key);
		if (!s) {
			if (!closed)
				continue;
			char names[512] = "";
			size_t off = 0;
			const char *k;
			json_t *x;
			json_object_foreach(props, k, x)
			{
				int w = snprintf(names + off, sizeof names - off, "%s'%s'",
						 off ? ", " : "", k);
				if (w < 0 || (size_t)w >= sizeof names - off)
					break;
				off += (size_t)w;
			}
			/* The client's key, cut between characters (the message
			 * is JSON) and short enough to leave room for the list. */
			snprintf(msg, n, "unknown argument '%.*s' (this tool takes %s)",
				 (int)utf8_trunc(key, 128), key, off ? names : "no arguments");
			return -1;
		}
		if (check_value(s, v, key, msg, n) < 0)
			return -1;
	}
	return 0;
}
