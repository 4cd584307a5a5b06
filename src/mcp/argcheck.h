/* argcheck.h - tools/call's arguments checked against the tool's
 * inputSchema: the small JSON Schema subset devbridge's schemas use.
 *
 * The root is {"type":"object", "properties":{...}, "required":[...],
 * "additionalProperties":false}; a property is a string (enum, minLength,
 * maxLength), an integer (minimum, maximum), a number (the same), a boolean,
 * or an array (items: one of those; minItems, maxItems).  Annotation
 * keywords (title, description, default, examples, $schema) are allowed
 * and ignored.  Any other keyword is refused by argcheck_schema_ok, which a
 * unit test runs over every tool, so a schema can never promise the model
 * a constraint the server does not check. */
#ifndef DEVBRIDGE_MCP_ARGCHECK_H
#define DEVBRIDGE_MCP_ARGCHECK_H

#include <jansson.h>
#include <stddef.h>

/* 0 when `schema` is an object schema within the subset, else -1 with the
 * reason in msg ("properties.name: keyword 'pattern' is not supported"). */
int argcheck_schema_ok(const json_t *schema, char *msg, size_t n);

/* 0 when `args` (an object) satisfies `schema` (accepted by
 * argcheck_schema_ok), else -1 with a message for the model in msg
 * ("argument 'timeout': expected an integer, got a string"). */
int argcheck(const json_t *schema, const json_t *args, char *msg, size_t n);

#endif
