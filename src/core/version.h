/* The version of WhatStyle (printed by `whatstyle version`, exported as ws_build_info). */
#ifndef WS_CORE_VERSION_H
#define WS_CORE_VERSION_H

#define WS_VERSION "0.1.0"

#endif
