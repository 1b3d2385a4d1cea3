/*
 * df._host_raise(message, sqlstate, detail, hint, context): the plv8 host's way to raise an error
 * exactly as plv8 does (js_error::rethrow in plv8.cc): message, SQLSTATE, DETAIL, HINT and a
 * CONTEXT made of the error's own context and the "<function>() LINE <n>: <source line>" of its
 * throw site, computed by src/host/host.ts. No procedural language can set an error's CONTEXT, so
 * this is C; the embedded cluster compiles it for the host flavor only (src/embedded/cluster.ts).
 *
 * It is called from the PL/pgSQL wrapper that gives each host shim its SQL signature, as a simple
 * expression (`v := df._host_raise(...)`), so the one error-context frame above it is that
 * wrapper's: plv8 has no such frame, so it is skipped, and callers' frames stay as with plv8.
 */
#include "postgres.h"
#include "fmgr.h"
#include "utils/builtins.h"

PG_MODULE_MAGIC;

PG_FUNCTION_INFO_V1(pgd_host_raise);

static char *
arg_or_null(FunctionCallInfo fcinfo, int n)
{
	if (PG_ARGISNULL(n))
		return NULL;
	return text_to_cstring(PG_GETARG_TEXT_PP(n));
}

Datum
pgd_host_raise(PG_FUNCTION_ARGS)
{
	char	   *message = arg_or_null(fcinfo, 0);
	char	   *sqlstate = arg_or_null(fcinfo, 1);
	char	   *detail = arg_or_null(fcinfo, 2);
	char	   *hint = arg_or_null(fcinfo, 3);
	char	   *context = arg_or_null(fcinfo, 4);
	int			code = ERRCODE_INTERNAL_ERROR;

	if (sqlstate != NULL && strlen(sqlstate) == 5)
		code = MAKE_SQLSTATE(sqlstate[0], sqlstate[1], sqlstate[2], sqlstate[3], sqlstate[4]);

	/* Drop the calling wrapper's frame; PG_TRY blocks and error recovery restore the stack. */
	if (error_context_stack != NULL)
		error_context_stack = error_context_stack->previous;

	ereport(ERROR,
			(errcode(code),
			 errmsg_internal("%s", message ? message : "unknown exception"),
			 detail ? errdetail_internal("%s", detail) : 0,
			 hint ? errhint("%s", hint) : 0,
			 context ? errcontext("%s", context) : 0));
	PG_RETURN_NULL();
}
