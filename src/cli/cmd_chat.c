/* `whatstyle chat DIR`: talk to the clone in the terminal. Each line you type is a message;
 * the clone answers as the persona. Works interactively (a prompt, /help, /profile, /reset,
 * /quit) and with piped input (one reply line per input line, no prompts). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "cli/opts.h"
#include "core/mem.h"

#define HISTORY 8
#define LINE_CAP 4096

static void push_history(ws_clone_turn *h, size_t *n, const char *author, const char *text)
{
    if (*n == HISTORY) {
        free((char *)h[0].author);
        free((char *)h[0].text);
        memmove(h, h + 1, (HISTORY - 1) * sizeof *h);
        (*n)--;
    }
    h[*n].author = author ? ws_xstrdup(author) : NULL;
    h[*n].text = ws_xstrdup(text);
    (*n)++;
}

static void clear_history(ws_clone_turn *h, size_t *n)
{
    for (size_t i = 0; i < *n; i++) {
        free((char *)h[i].author);
        free((char *)h[i].text);
    }
    *n = 0;
}

static int say(ws_clone *c, ws_clone_turn *hist, size_t *n_hist, const char *line, bool interactive,
               bool show_you)
{
    ws_clone_answer a;
    ws_error err = {0};
    if (show_you)
        printf("you: %s\n", line);
    if (ws_clone_reply(c, line, hist, *n_hist, NULL, &a, &err)) {
        fprintf(stderr, "whatstyle chat: %s\n", err.msg);
        return -1;
    }
    if (interactive)
        printf("%s: %s   \033[2m(confidence %.2f%s, %.0f ms)\033[0m\n", ws_clone_persona(c), a.reply,
               a.confidence, a.fallback ? ", fallback" : "", a.processing_ms);
    else
        printf("%s: %s\n", ws_clone_persona(c), a.reply);
    fflush(stdout);
    push_history(hist, n_hist, NULL, line);
    push_history(hist, n_hist, ws_clone_persona(c), a.reply);
    ws_clone_answer_clear(&a);
    return 0;
}

int ws_cli_chat_loop(ws_clone *c, FILE *in, bool interactive)
{
    ws_clone_turn hist[HISTORY];
    size_t n_hist = 0;
    char line[LINE_CAP];
    if (interactive)
        printf("Chatting with the clone of %s. Type a message; /profile, /reset, /quit.\n",
               ws_clone_persona(c));
    int rc = 0;
    for (;;) {
        if (interactive) {
            printf("you> ");
            fflush(stdout);
        }
        if (!fgets(line, sizeof line, in))
            break;
        size_t len = strlen(line);
        bool too_long = len == sizeof line - 1 && line[len - 1] != '\n';
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (too_long) { /* drop the rest of an over-long line */
            int ch;
            while ((ch = fgetc(in)) != EOF && ch != '\n')
                ;
        }
        char *s = line;
        while (*s == ' ' || *s == '\t')
            s++;
        if (!*s)
            continue;
        if (!strcmp(s, "/quit") || !strcmp(s, "/exit"))
            break;
        if (!strcmp(s, "/reset")) {
            clear_history(hist, &n_hist);
            printf("(conversation cleared)\n");
            continue;
        }
        if (!strcmp(s, "/profile")) {
            fputs(ws_clone_profile_summary(c), stdout);
            continue;
        }
        if (!strcmp(s, "/help")) {
            printf("Type a message and press Enter. /profile shows the style profile, /reset forgets the\n"
                   "conversation, /quit leaves.\n");
            continue;
        }
        if (say(c, hist, &n_hist, s, interactive, false)) {
            rc = 1;
            break;
        }
    }
    if (interactive)
        printf("\n");
    clear_history(hist, &n_hist);
    return rc;
}

int ws_cli_chat_scripted(ws_clone *c, const char *const *lines, size_t n)
{
    ws_clone_turn hist[HISTORY];
    size_t n_hist = 0;
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++)
        rc = say(c, hist, &n_hist, lines[i], false, true);
    clear_history(hist, &n_hist);
    return rc ? 1 : 0;
}

typedef struct chat_cli {
    const char *minilm_dir;
    int nn_threads;
} chat_cli;

static const ws_opt rows[] = {
    WS_CLI_ROW_NN_THREADS(chat_cli, nn_threads),
    WS_CLI_ROW_MINILM_DIR(chat_cli, minilm_dir),
};

const ws_cli_spec ws_cli_spec_chat = {
    .name = "chat",
    .synopsis = "DIR",
    .about = "Chat with the clone trained into DIR (reads messages from stdin; /help in a terminal).\n",
    .min_pos = 1,
    .max_pos = 1,
    WS_CLI_SPEC_ROWS(rows),
};

int ws_cmd_chat(int argc, char **argv)
{
    chat_cli o = {.nn_threads = -1};
    ws_cli_pos pos;
    int pr = ws_cli_parse(&ws_cli_spec_chat, argc, argv, &o, &pos, NULL);
    if (pr)
        return pr == 1 ? 0 : 2;
    ws_cli_engine_apply(o.nn_threads, o.minilm_dir);
    const char *dir = pos.v[0];
    ws_clone *c = NULL;
    ws_error err = {0};
    if (ws_clone_open(dir, &c, &err)) {
        fprintf(stderr, "whatstyle chat: %s\n", err.msg);
        return 1;
    }
    int rc = ws_cli_chat_loop(c, stdin, isatty(STDIN_FILENO) && isatty(STDOUT_FILENO));
    ws_clone_free(c);
    return rc;
}
