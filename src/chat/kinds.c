/* What kind of message a body is: media placeholders, deleted-message notices, iOS system
 * events printed as if sent by a person (marked by a leading LRM), and "edited" markers — in the languages WhatsApp
 * exports most often. Matching ignores ASCII case, leading direction marks and trailing
 * spaces/dots. */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "chat/chat_int.h"

/* Whole-body media placeholders (Android "<...>" forms and iOS "... omitted" forms). */
static const char *const media_exact[] = {
    "<Media omitted>", "<M\xC3\xA9" "dias omis>", "<Multimedia omitido>", "<Archivo omitido>",
    "<M\xC3\xAD" "dia oculta>", "<Arquivo de m\xC3\xAD" "dia oculto>", "<Medien ausgeschlossen>",
    "<Media weggelaten>", "<Media omessi>", "<Media tidak disertakan>", "<Medya dahil edilmedi>",
    "<\xD0\x91\xD0\xB5\xD0\xB7 \xD0\xBC\xD0\xB5\xD0\xB4\xD0\xB8\xD0\xB0\xD1\x84\xD0\xB0\xD0\xB9\xD0\xBB\xD0\xBE\xD0\xB2>", /* <Без медиафайлов> */
    "<\xD8\xAA\xD9\x85 \xD8\xAD\xD8\xB0\xD9\x81 \xD8\xA7\xD9\x84\xD9\x88\xD8\xB3\xD8\xA7\xD8\xA6\xD8\xB7>", /* <تم حذف الوسائط> */
    "<\xE0\xA4\xAE\xE0\xA5\x80\xE0\xA4\xA1\xE0\xA4\xBF\xE0\xA4\xAF\xE0\xA4\xBE \xE0\xA4\x95\xE0\xA5\x87 \xE0\xA4\xAC\xE0\xA4\xBF\xE0\xA4\xA8\xE0\xA4\xBE>", /* <मीडिया के बिना> */
    "image omitted", "video omitted", "audio omitted", "sticker omitted", "GIF omitted",
    "document omitted", "Contact card omitted", "photo omitted", "voice message omitted",
    "imagen omitida", "video omitido", "audio omitido", "sticker omitido", "GIF omitido",
    "documento omitido", "Tarjeta de contacto omitida",
    "imagem ocultada", "v\xC3\xAD" "deo omitido", "\xC3\xA1udio ocultado", "figurinha omitida",
    "Bild weggelassen", "Video weggelassen", "Audio weggelassen", "Sticker weggelassen",
    "GIF weggelassen", "Dokument weggelassen", "Kontaktkarte weggelassen",
    "image absente", "vid\xC3\xA9o absente", "audio omis", "autocollant omis", "GIF retir\xC3\xA9",
    "immagine omessa", "video omesso", "audio omesso", "sticker omesso", "GIF omessa",
    "afbeelding weggelaten", "video weggelaten", "audio weggelaten", "sticker weggelaten",
    "gambar tidak disertakan", "video tidak disertakan", "audio tidak disertakan",
};

/* Suffixes of Android "IMG-2021...-WA0001.jpg (file attached)" lines. */
static const char *const media_suffix[] = {
    "(file attached)", "(archivo adjunto)", "(arquivo anexado)", "(Datei angeh\xC3\xA4ngt)",
    "(fichier joint)", "(file allegato)", "(bestand bijgevoegd)", "(berkas terlampir)",
    "(dosya ekli)", "(\xD1\x84\xD0\xB0\xD0\xB9\xD0\xBB \xD0\xBF\xD1\x80\xD0\xB8\xD0\xBA\xD1\x80\xD0\xB5\xD0\xBF\xD0\xBB\xD0\xB5\xD0\xBD)",
};

static const char *const deleted_exact[] = {
    "This message was deleted", "You deleted this message",
    "Este mensaje fue eliminado", "Eliminaste este mensaje", "Se elimin\xC3\xB3 este mensaje",
    "Esta mensagem foi apagada", "Voc\xC3\xAA apagou esta mensagem", "Mensagem apagada",
    "Diese Nachricht wurde gel\xC3\xB6scht", "Du hast diese Nachricht gel\xC3\xB6scht",
    "Ce message a \xC3\xA9t\xC3\xA9 supprim\xC3\xA9", "Vous avez supprim\xC3\xA9 ce message",
    "Questo messaggio \xC3\xA8 stato eliminato", "Hai eliminato questo messaggio",
    "Dit bericht is verwijderd", "Je hebt dit bericht verwijderd",
    "Pesan ini telah dihapus", "Anda menghapus pesan ini",
    "Bu mesaj silindi", "Bu mesaj\xC4\xB1 sildiniz",
    "\xD0\x94\xD0\xB0\xD0\xBD\xD0\xBD\xD0\xBE\xD0\xB5 \xD1\x81\xD0\xBE\xD0\xBE\xD0\xB1\xD1\x89\xD0\xB5\xD0\xBD\xD0\xB8\xD0\xB5 \xD1\x83\xD0\xB4\xD0\xB0\xD0\xBB\xD0\xB5\xD0\xBD\xD0\xBE", /* Данное сообщение удалено */
    "\xD0\x92\xD1\x8B \xD1\x83\xD0\xB4\xD0\xB0\xD0\xBB\xD0\xB8\xD0\xBB\xD0\xB8 \xD0\xB4\xD0\xB0\xD0\xBD\xD0\xBD\xD0\xBE\xD0\xB5 \xD1\x81\xD0\xBE\xD0\xBE\xD0\xB1\xD1\x89\xD0\xB5\xD0\xBD\xD0\xB8\xD0\xB5", /* Вы удалили данное сообщение */
    "\xD8\xAA\xD9\x85 \xD8\xAD\xD8\xB0\xD9\x81 \xD9\x87\xD8\xB0\xD9\x87 \xD8\xA7\xD9\x84\xD8\xB1\xD8\xB3\xD8\xA7\xD9\x84\xD8\xA9", /* تم حذف هذه الرسالة */
    "\xD9\x84\xD9\x82\xD8\xAF \xD8\xAD\xD8\xB0\xD9\x81\xD8\xAA \xD9\x87\xD8\xB0\xD9\x87 \xD8\xA7\xD9\x84\xD8\xB1\xD8\xB3\xD8\xA7\xD9\x84\xD8\xA9", /* لقد حذفت هذه الرسالة */
    "\xE0\xA4\xAF\xE0\xA4\xB9 \xE0\xA4\xB8\xE0\xA4\x82\xE0\xA4\xA6\xE0\xA5\x87\xE0\xA4\xB6 \xE0\xA4\xB9\xE0\xA4\x9F\xE0\xA4\xBE \xE0\xA4\xA6\xE0\xA4\xBF\xE0\xA4\xAF\xE0\xA4\xBE \xE0\xA4\x97\xE0\xA4\xAF\xE0\xA4\xBE \xE0\xA4\xA5\xE0\xA4\xBE", /* यह संदेश हटा दिया गया था */
};

static const char *const edited_suffix[] = {
    "<This message was edited>", "<Se edit\xC3\xB3 este mensaje.>", "<Se edit\xC3\xB3 este mensaje>",
    "<Mensagem editada>", "<Diese Nachricht wurde bearbeitet.>", "<Diese Nachricht wurde bearbeitet>",
    "<Ce message a \xC3\xA9t\xC3\xA9 modifi\xC3\xA9>", "<Messaggio modificato>", "<Dit bericht is bewerkt>",
    "<Pesan ini telah diedit>", "<Bu mesaj d\xC3\xBCzenlendi>",
    "<\xD0\xA1\xD0\xBE\xD0\xBE\xD0\xB1\xD1\x89\xD0\xB5\xD0\xBD\xD0\xB8\xD0\xB5 \xD0\xB8\xD0\xB7\xD0\xBC\xD0\xB5\xD0\xBD\xD0\xB5\xD0\xBD\xD0\xBE>", /* <Сообщение изменено> */
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))
#define COUNT_EDITED COUNT(edited_suffix)
#define COUNT_MEDIA_SUFFIX COUNT(media_suffix)

/* Trims leading direction marks and trailing spaces, dots and marks. */
static void trim(const char **s, size_t *n)
{
    size_t m;
    while (*n && (m = ws__chat_mark_len(*s, *n))) {
        *s += m;
        *n -= m;
    }
    for (;;) {
        if (*n && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '.'))
            (*n)--;
        else if (*n >= 3 && ws__chat_mark_len(*s + *n - 3, 3) == 3)
            *n -= 3;
        else
            break;
    }
}

/* The (length, first letter) pairs that occur in a table, so most bodies are rejected
 * without a comparison. */
typedef struct length_filter {
    uint64_t bits[64];    /* (length, lower-cased first byte) pairs, hashed to 4096 bits */
    unsigned short lens[128];
} length_filter;

static unsigned filter_key(size_t len, unsigned char first)
{
    if (first >= 'A' && first <= 'Z')
        first = (unsigned char)(first + 32);
    return (unsigned)(len * 257u + first) & 4095u;
}

static length_filter deleted_lengths, media_lengths;
static size_t edited_lens[COUNT_EDITED], media_suffix_lens[COUNT_MEDIA_SUFFIX];
static pthread_once_t filters_once = PTHREAD_ONCE_INIT;
static int filters_ready;   /* set once the filters are filled: skips pthread_once after that */

static void fill_filter(length_filter *f, const char *const *list, size_t count)
{
    for (size_t i = 0; i < count && i < 128; i++) {
        size_t len = strlen(list[i]);
        f->lens[i] = (unsigned short)len;
        unsigned key = filter_key(len, (unsigned char)list[i][0]);
        f->bits[key >> 6] |= 1ull << (key & 63);
    }
}

_Static_assert(COUNT(deleted_exact) <= 128 && COUNT(media_exact) <= 128, "length_filter.lens too small");

static void init_filters(void)
{
    for (size_t i = 0; i < COUNT_EDITED; i++)
        edited_lens[i] = strlen(edited_suffix[i]);
    for (size_t i = 0; i < COUNT_MEDIA_SUFFIX; i++)
        media_suffix_lens[i] = strlen(media_suffix[i]);
    fill_filter(&deleted_lengths, deleted_exact, COUNT(deleted_exact));
    fill_filter(&media_lengths, media_exact, COUNT(media_exact));
    __atomic_store_n(&filters_ready, 1, __ATOMIC_RELEASE);
}

static bool equals_any(const char *s, size_t n, const char *const *list, size_t count,
                       const length_filter *f)
{
    unsigned key = filter_key(n, n ? (unsigned char)s[0] : 0);
    if (!(f->bits[key >> 6] & (1ull << (key & 63))))
        return false;
    for (size_t i = 0; i < count; i++)
        if (f->lens[i] == n && strncasecmp(s, list[i], n) == 0)
            return true;
    return false;
}

static bool ends_with(const char *s, size_t n, const char *suffix, size_t len, size_t *at)
{
    if (len > n || strncasecmp(s + n - len, suffix, len) != 0)
        return false;
    *at = n - len;
    return true;
}

static bool contains(const char *s, size_t n, const char *needle)
{
    return memmem(s, n, needle, strlen(needle)) != NULL;
}

static bool starts_with(const char *s, size_t n, const char *prefix)
{
    size_t len = strlen(prefix);
    return n >= len && memcmp(s, prefix, len) == 0;
}

/* "<attached: 00000012-PHOTO-2021-03-12-14-05-32.jpg>" in any language. */
static bool is_attachment_ref(const char *s, size_t n)
{
    if (!n || s[n - 1] != '>')
        return false;
    const char *lt = NULL;
    for (size_t i = n; i-- > 0;)
        if (s[i] == '<') {
            lt = s + i;
            break;
        }
    if (!lt)
        return false;
    size_t inner = (size_t)(s + n - 1 - (lt + 1));
    const char *colon = memchr(lt + 1, ':', inner);
    if (!colon || colon - lt > 32)
        return false;
    const char *name = colon + 1;
    size_t name_len = (size_t)(s + n - 1 - name);
    return name_len > 2 && memchr(name, '.', name_len) != NULL;
}

ws_msg_kind ws__chat_classify(const char *text, size_t n, bool *edited)
{
    const char *s = text;
    size_t len = n, at;
    *edited = false;
    if (!__atomic_load_n(&filters_ready, __ATOMIC_ACQUIRE))
        pthread_once(&filters_once, init_filters);
    if (!n)
        return WS_MSG_TEXT;
    unsigned char first = (unsigned char)text[0], last = (unsigned char)text[n - 1];
    if (first < 0x80 && first != 'M' && last < 0x80 && last != ' ' && last != '.' && last != '>' &&
        last != ')') {
        /* nothing to trim, no marker suffix, no LRM, no encryption notice: only the tables */
        if (equals_any(s, len, deleted_exact, COUNT(deleted_exact), &deleted_lengths))
            return WS_MSG_DELETED;
        return equals_any(s, len, media_exact, COUNT(media_exact), &media_lengths) ? WS_MSG_MEDIA
                                                                                  : WS_MSG_TEXT;
    }
    trim(&s, &len);
    for (size_t i = 0; len && s[len - 1] == '>' && i < COUNT(edited_suffix); i++)
        if (ends_with(s, len, edited_suffix[i], edited_lens[i], &at)) {
            *edited = true;
            len = at;
            trim(&s, &len);
            break;
        }
    if (equals_any(s, len, deleted_exact, COUNT(deleted_exact), &deleted_lengths))
        return WS_MSG_DELETED;
    if (equals_any(s, len, media_exact, COUNT(media_exact), &media_lengths) || is_attachment_ref(s, len))
        return WS_MSG_MEDIA;
    for (size_t i = 0; len && s[len - 1] == ')' && i < COUNT(media_suffix); i++)
        if (ends_with(s, len, media_suffix[i], media_suffix_lens[i], &at) && at > 0)
            return WS_MSG_MEDIA;
    /* iOS prints group events (created, added, left, encryption, calls...) as if sent by the
     * group or a person, and starts their text with a left-to-right mark; what people type
     * never does. Media and deletions carry the mark too, and were matched above. */
    if (n >= 3 && (unsigned char)text[0] == 0xE2 && (unsigned char)text[1] == 0x80 &&
        (unsigned char)text[2] == 0x8E)
        return WS_MSG_SYSTEM;
    if (len > 20 && s[0] == 'M' && (starts_with(s, len, "Messages and calls are end-to-end encrypted") ||
                                     starts_with(s, len, "Messages to this group are now secured with end-to-end encryption")))
        return WS_MSG_SYSTEM;
    return WS_MSG_TEXT;
}

bool ws__chat_is_system_text(const char *text, size_t n)
{
    static const char *const with_colon[] = {
        " changed the subject from ", " changed the subject to ", " changed the group name from ",
        " changed the group name to ", " changed the group description", " cambi\xC3\xB3 el asunto",
        " mudou o assunto", " hat den Betreff", " a modifi\xC3\xA9 le sujet", " ha cambiato l'oggetto",
    };
    for (size_t i = 0; i < COUNT(with_colon); i++)
        if (contains(text, n, with_colon[i]))
            return true;
    return false;
}
