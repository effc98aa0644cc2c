/* The calling thread's request deadline (see deadline.h). */
#include "core/deadline.h"

static _Thread_local double current;

double ws_deadline_get(void)
{
    return current;
}

double ws_deadline_set(double deadline)
{
    double prev = current;
    current = deadline > 0 ? deadline : 0;
    return prev;
}

double ws_deadline_bound(double d)
{
    return current > 0 && current < d ? current : d;
}
