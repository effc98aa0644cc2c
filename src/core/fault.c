/* Fault injection for tests (see fault.h). */
#include "core/fault.h"

void ws_fault_arm(ws_fault *f, uint64_t nth, uint64_t rate_ppm, uint64_t seed)
{
    atomic_store(&f->nth, 0);
    atomic_store(&f->rate_ppm, 0);
    atomic_store(&f->calls, 0);
    atomic_store(&f->injected, 0);
    atomic_store(&f->seed, seed);
    atomic_store(&f->rate_ppm, rate_ppm);
    atomic_store(&f->nth, nth);
}

void ws_fault_disarm(ws_fault *f)
{
    atomic_store(&f->nth, 0);
    atomic_store(&f->rate_ppm, 0);
}

/* splitmix64 of the seed and the call number: the decision for a call depends on nothing else */
static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

bool ws_fault_hit(ws_fault *f)
{
    if (!f)
        return false;
    uint64_t nth = atomic_load(&f->nth), ppm = atomic_load(&f->rate_ppm);
    if (!nth && !ppm)
        return false;
    uint64_t call = atomic_fetch_add(&f->calls, 1) + 1;
    bool hit = nth ? call == nth : mix(atomic_load(&f->seed) ^ mix(call)) % 1000000 < ppm;
    if (hit)
        atomic_fetch_add(&f->injected, 1);
    return hit;
}
