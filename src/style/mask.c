/* Hand-written scanners for phone numbers, e-mail addresses and links, and the rules file. */
#include "style/mask.h"

#include "core/file.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/mem.h"

static bool is_alnum_b(unsigned char c)
{
    return isalnum(c) || c >= 0x80;
}
static bool is_local_c(unsigned char c)
{
    return isalnum(c) || strchr("._%+-", c) != NULL;
}
static bool is_label_c(unsigned char c)
{
    return isalnum(c) || c == '-' || c >= 0x80;
}

/* A domain at s[i]: labels joined by dots, the last one (TLD) at least two letters.
 * Returns its length and the start of the TLD in *tld (0 when none). */
static size_t domain_at(const char *s, size_t n, size_t i, size_t *tld)
{
    size_t j = i, last_label = i, dots = 0;
    for (;;) {
        size_t st = j;
        while (j < n && is_label_c((unsigned char)s[j]))
            j++;
        if (j == st || s[st] == '-' || s[j - 1] == '-')
            return 0;
        last_label = st;
        if (j + 1 < n && s[j] == '.' && is_label_c((unsigned char)s[j + 1])) {
            j++;
            dots++;
            continue;
        }
        break;
    }
    if (!dots)
        return 0;
    for (size_t k = last_label; k < j; k++)
        if (!isalpha((unsigned char)s[k]))
            return 0;
    if (j - last_label < 2)
        return 0;
    *tld = last_label;
    return j - i;
}

static size_t match_email(const char *s, size_t n, size_t i)
{
    if (i > 0 && is_local_c((unsigned char)s[i - 1]))
        return 0;
    size_t j = i;
    while (j < n && is_local_c((unsigned char)s[j]))
        j++;
    if (j == i || s[i] == '.' || j >= n || s[j] != '@')
        return 0;
    size_t tld;
    size_t d = domain_at(s, n, j + 1, &tld);
    return d ? j + 1 + d - i : 0;
}

static bool prefix_ci(const char *s, size_t n, size_t i, const char *p)
{
    size_t l = strlen(p);
    return n - i >= l && strncasecmp(s + i, p, l) == 0;
}

/* How far a link runs: to whitespace or a quote/angle bracket, without trailing punctuation. */
static size_t url_tail(const char *s, size_t n, size_t j)
{
    while (j < n && !isspace((unsigned char)s[j]) && !strchr("<>\"", s[j]))
        j++;
    while (j > 0 && strchr(".,;:!?)]}'", s[j - 1]))
        j--;
    return j;
}

static const char *strong_tlds[] = {"com", "net",  "org", "io", "dev", "app", "ly",  "gl",
                                    "co",  "info", "biz", "me", "tv",  "gov", "edu", NULL};

static size_t match_url(const char *s, size_t n, size_t i)
{
    if (i > 0 && (is_alnum_b((unsigned char)s[i - 1]) || strchr("@./", s[i - 1])))
        return 0;
    static const char *schemes[] = {"https://", "http://", "ftp://", "www.", NULL};
    for (int k = 0; schemes[k]; k++)
        if (prefix_ci(s, n, i, schemes[k])) {
            size_t start = i + strlen(schemes[k]);
            if (start >= n || isspace((unsigned char)s[start]))
                return 0;
            size_t end = url_tail(s, n, start);
            return end > start ? end - i : 0;
        }
    /* bare domain: a known TLD, or any TLD followed by a path */
    size_t tld;
    size_t d = domain_at(s, n, i, &tld);
    if (!d)
        return 0;
    size_t end = i + d;
    if (end < n && s[end] == '@')
        return 0; /* part of an e-mail address */
    if (end < n && s[end] == '/')
        return url_tail(s, n, end) - i;
    for (int k = 0; strong_tlds[k]; k++)
        if (end - tld == strlen(strong_tlds[k]) && strncasecmp(s + tld, strong_tlds[k], end - tld) == 0)
            return (end < n && is_alnum_b((unsigned char)s[end])) ? 0 : d;
    return 0;
}

static size_t match_phone(const char *s, size_t n, size_t i)
{
    if (i > 0 && (is_alnum_b((unsigned char)s[i - 1]) || strchr("+-./:,", s[i - 1])))
        return 0;
    size_t j = i;
    bool plus = false;
    if (s[j] == '+') {
        plus = true;
        j++;
    }
    size_t digits = 0, group = 0, groups = 0, last_digit_end = 0, seps = 0;
    bool short_group = false, prev_sep = false;
    int parens = 0;
    for (; j < n; j++) {
        unsigned char c = (unsigned char)s[j];
        if (isdigit(c)) {
            digits++;
            group++;
            last_digit_end = j + 1;
            prev_sep = false;
        } else if (c == ' ' || c == '-' || c == '(' || c == ')' || (c == '.' && plus)) {
            if (c == '(')
                parens++;
            if (c == ')' && --parens < 0)
                break;
            if (prev_sep && c == ' ' && s[j - 1] == ' ')
                break;
            if (group) {
                groups++;
                if (group < 2 && !(groups == 1 && plus))
                    short_group = true;
            }
            group = 0;
            seps++;
            prev_sep = true;
        } else {
            break;
        }
        if (digits > 15)
            return 0;
    }
    if (group) {
        groups++;
        if (group < 2 && !(groups == 1 && plus))
            short_group = true;
    }
    if (!last_digit_end || digits < 7 || short_group)
        return 0;
    if (last_digit_end < n && is_alnum_b((unsigned char)s[last_digit_end]))
        return 0;
    if (!plus && groups == 1 && digits < 9)
        return 0; /* a bare number: only long ones look like phone numbers */
    (void)seps;
    return last_digit_end - i;
}

size_t ws_mask_match(ws_mask_kind kind, const char *s, size_t n, size_t i)
{
    if (i >= n)
        return 0;
    switch (kind) {
    case WS_MASK_PHONE: return match_phone(s, n, i);
    case WS_MASK_EMAIL: return match_email(s, n, i);
    case WS_MASK_URL: return match_url(s, n, i);
    }
    return 0;
}

void ws_mask_rules_default(ws_mask_rules *r)
{
    memset(r, 0, sizeof *r);
    r->n = 3;
    r->rule[0] = (ws_mask_rule){"email", WS_MASK_EMAIL, "<email>"};
    r->rule[1] = (ws_mask_rule){"link", WS_MASK_URL, "<link>"};
    r->rule[2] = (ws_mask_rule){"phone", WS_MASK_PHONE, "<phone>"};
}

int ws_mask_rules_parse(const char *text, size_t len, ws_mask_rules *out, ws_error *err)
{
    memset(out, 0, sizeof *out);
    if (len > WS_MASK_MAX_RULES_FILE)
        return ws_error_set(err, WS_ETOOBIG, "masking rules: file above %d bytes", WS_MASK_MAX_RULES_FILE);
    size_t pos = 0, lineno = 0;
    while (pos < len) {
        size_t e = pos;
        while (e < len && text[e] != '\n')
            e++;
        lineno++;
        const char *l = text + pos;
        size_t ll = e - pos;
        pos = e + 1;
        if (ll && l[ll - 1] == '\r')
            ll--;
        size_t a = 0;
        while (a < ll && (l[a] == ' ' || l[a] == '\t'))
            a++;
        if (a == ll || l[a] == '#')
            continue;
        /* name */
        size_t ns = a;
        while (a < ll && l[a] != ' ' && l[a] != '\t')
            a++;
        size_t nlen = a - ns;
        while (a < ll && (l[a] == ' ' || l[a] == '\t'))
            a++;
        size_t ks = a;
        while (a < ll && l[a] != ' ' && l[a] != '\t')
            a++;
        size_t klen = a - ks;
        while (a < ll && (l[a] == ' ' || l[a] == '\t'))
            a++;
        const char *rep = l + a;
        size_t rlen = ll - a;
        while (rlen && (rep[rlen - 1] == ' ' || rep[rlen - 1] == '\t'))
            rlen--;
        if (!nlen || !klen || nlen >= sizeof out->rule[0].name)
            return ws_error_set(err, WS_EFORMAT,
                                "masking rules line %zu: expected '<name> <kind> <replacement>'", lineno);
        ws_mask_kind kind;
        if (klen == 5 && !memcmp(l + ks, "phone", 5))
            kind = WS_MASK_PHONE;
        else if (klen == 5 && !memcmp(l + ks, "email", 5))
            kind = WS_MASK_EMAIL;
        else if (klen == 3 && !memcmp(l + ks, "url", 3))
            kind = WS_MASK_URL;
        else
            return ws_error_set(err, WS_EFORMAT,
                                "masking rules line %zu: unknown kind '%.*s' (phone, email or url)", lineno,
                                (int)(klen > 32 ? 32 : klen), l + ks);
        if (rlen == 2 && rep[0] == '"' && rep[1] == '"')
            rlen = 0;
        if (rlen >= sizeof out->rule[0].replacement)
            return ws_error_set(err, WS_EFORMAT, "masking rules line %zu: replacement longer than %zu bytes",
                                lineno, sizeof out->rule[0].replacement - 1);
        if (out->n == WS_MASK_MAX_RULES)
            return ws_error_set(err, WS_ETOOBIG, "masking rules: more than %d rules", WS_MASK_MAX_RULES);
        ws_mask_rule *r = &out->rule[out->n++];
        memcpy(r->name, l + ns, nlen);
        r->kind = kind;
        memcpy(r->replacement, rep, rlen);
    }
    return 0;
}

int ws_mask_rules_load(const char *path, ws_mask_rules *out, ws_error *err)
{
    char *buf;
    size_t n;
    int rc = ws_file_read(path, WS_MASK_MAX_RULES_FILE, &buf, &n, err);
    if (rc)
        return rc;
    rc = ws_mask_rules_parse(buf, n, out, err);
    free(buf);
    return rc;
}

/* Cheap tests that rule a position out before a scanner runs (most positions sit inside words). */
static bool may_start(ws_mask_kind kind, const char *s, size_t i, bool has_at, bool has_dot_or_colon)
{
    unsigned char c = (unsigned char)s[i];
    switch (kind) {
    case WS_MASK_PHONE: return isdigit(c) || c == '+' || c == '(';
    case WS_MASK_EMAIL: return has_at && is_local_c(c);
    case WS_MASK_URL: return has_dot_or_colon && isalnum(c);
    }
    return false;
}

size_t ws_mask_apply(const ws_mask_rules *r, const char *s, size_t n, ws_buf *out)
{
    /* one pass to see which scanners could match at all: most chat lines have no 7 digits,
     * no '@' and no '.' or ':' */
    size_t digits = 0;
    bool has_at = false, has_dc = false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        digits += c >= '0' && c <= '9';
        has_at |= c == '@';
        has_dc |= c == '.' || c == ':';
    }
    bool any = false;
    for (size_t k = 0; k < r->n; k++)
        any |= (r->rule[k].kind == WS_MASK_PHONE && digits >= 7) ||
               (r->rule[k].kind == WS_MASK_EMAIL && has_at) || (r->rule[k].kind == WS_MASK_URL && has_dc);
    if (!any) {
        ws_buf_append(out, s, n);
        return 0;
    }
    size_t count = 0, i = 0, copied = 0;
    while (i < n) {
        size_t m = 0, which = 0;
        /* every scanner needs a word boundary on its left */
        if (i == 0 || !isalnum((unsigned char)s[i - 1])) {
            for (size_t k = 0; k < r->n && !m; k++) {
                if (!may_start(r->rule[k].kind, s, i, has_at, has_dc) ||
                    (r->rule[k].kind == WS_MASK_PHONE && digits < 7))
                    continue;
                m = ws_mask_match(r->rule[k].kind, s, n, i);
                which = k;
            }
        }
        if (m) {
            ws_buf_append(out, s + copied, i - copied);
            ws_buf_puts(out, r->rule[which].replacement);
            count++;
            i += m;
            copied = i;
        } else {
            i++;
        }
    }
    ws_buf_append(out, s + copied, n - copied);
    return count;
}
