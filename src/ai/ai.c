/* Helpers shared by every AI implementation: releasing result structs. */
#include "ai/ai.h"

#include <stdlib.h>
#include <string.h>

void ws_ai_reply_clear(ws_ai_reply *r)
{
    free(r->reply);
    free(r->model_version);
    memset(r, 0, sizeof *r);
}

void ws_ai_train_result_clear(ws_ai_train_result *r)
{
    free(r->model_version);
    free(r->metrics_json);
    memset(r, 0, sizeof *r);
}

void ws_ai_status_clear(ws_ai_status *s)
{
    for (size_t i = 0; i < s->n_resident; i++)
        free(s->resident[i].user_id);
    free(s->resident);
    free(s->base_model);
    memset(s, 0, sizeof *s);
}
