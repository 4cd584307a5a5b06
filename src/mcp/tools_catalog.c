/* tools_catalog.c - the OpsCatalog tools: each returns the document of its
 * command's --json (src/app/catalog.h).  See tools.h. */
#include "mcp/tools.h"
#include "app/catalog.h"

int tool_catalog_list_targets(struct mcp_call *c, json_t **ret_doc, struct err *e)
{
	return app_catalog_targets(c->app, tool_str(c->args, "domain"), ret_doc, e);
}

int tool_catalog_show_target(struct mcp_call *c, json_t **ret_doc, struct err *e)
{
	return app_catalog_target(c->app, tool_str(c->args, "id"), ret_doc, e);
}

int tool_catalog_list_domains(struct mcp_call *c, json_t **ret_doc, struct err *e)
{
	return app_catalog_domains(c->app, ret_doc, e);
}

int tool_catalog_validate(struct mcp_call *c, json_t **ret_doc, struct err *e)
{
	return app_catalog_validate(c->app, ret_doc, e);
}

int tool_catalog_show_bridge(struct mcp_call *c, json_t **ret_doc, struct err *e)
{
	return app_catalog_bridge(c->app, tool_str(c->args, "id"), ret_doc, e);
}
