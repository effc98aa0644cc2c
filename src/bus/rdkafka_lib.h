/* librdkafka, loaded on first use (core/lazylib.h): only `serve --kafka` and `worker` need it.
 * Call ws__rk_load before the first ws__rk.rd_kafka_...(); the functions keep librdkafka's
 * own contracts. */
#ifndef WS_BUS_RDKAFKA_LIB_H
#define WS_BUS_RDKAFKA_LIB_H

#include <librdkafka/rdkafka.h>

#include "core/lazylib.h"

/* clang-format off */
#define WS_RK_FUNCTIONS(X)                                                                          \
    X(rd_kafka_conf_new) X(rd_kafka_conf_set) X(rd_kafka_conf_destroy) X(rd_kafka_conf_set_dr_msg_cb)  \
    X(rd_kafka_conf_set_opaque) X(rd_kafka_new) X(rd_kafka_destroy) X(rd_kafka_producev)              \
    X(rd_kafka_poll) X(rd_kafka_flush) X(rd_kafka_outq_len) X(rd_kafka_err2str)                        \
    X(rd_kafka_subscribe) X(rd_kafka_topic_partition_list_new) X(rd_kafka_topic_partition_list_add)    \
    X(rd_kafka_topic_partition_list_destroy) X(rd_kafka_consumer_poll) X(rd_kafka_message_destroy)     \
    X(rd_kafka_commit) X(rd_kafka_consumer_close) X(rd_kafka_poll_set_consumer)                        \
    X(rd_kafka_message_headers) X(rd_kafka_header_get_last) X(rd_kafka_topic_name)                     \
    X(rd_kafka_NewTopic_new) X(rd_kafka_NewTopic_destroy) X(rd_kafka_CreateTopics)                     \
    X(rd_kafka_queue_new) X(rd_kafka_queue_destroy) X(rd_kafka_queue_poll)                             \
    X(rd_kafka_event_CreateTopics_result) X(rd_kafka_CreateTopics_result_topics)                       \
    X(rd_kafka_topic_result_error) X(rd_kafka_topic_result_error_string) X(rd_kafka_topic_result_name) \
    X(rd_kafka_event_error) X(rd_kafka_event_error_string) X(rd_kafka_event_destroy)                   \
    X(rd_kafka_metadata) X(rd_kafka_metadata_destroy) X(rd_kafka_message_timestamp)
/* clang-format on */

typedef struct ws__rk_api {
    WS_RK_FUNCTIONS(WS_LAZYLIB_SLOT)
} ws__rk_api;

extern ws__rk_api ws__rk; /* filled by ws__rk_load */

/* 0 once librdkafka is loaded; WS_EUNSUPPORTED with a message naming the package otherwise. */
int ws__rk_load(ws_error *err);

#endif
