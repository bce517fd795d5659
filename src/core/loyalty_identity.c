/*
 * Copyright (C) loyalty-edge authors
 */


#include <string.h>

#include "loyalty_identity.h"


/* digits read from a phone number: prefixes and a "(0)" come on top */
#define LOYALTY_PHONE_DIGITS  24


/*
 * What a national phone number needs to become E.164.  trunk is the
 * digit(s) dialled before a national number and dropped in E.164; exit
 * is an international prefix other than "00", which is recognised for
 * every country.
 */

typedef struct {
    char            iso[3];          /* ISO 3166-1 alpha-2 */
    char            code[4];         /* calling code */
    char            trunk[3];
    char            exit[5];
} loyalty_phone_country_t;


static const loyalty_phone_country_t *loyalty_phone_country(
    const char *country);
static int loyalty_phone_prefix(const u_char *digits, size_t n,
    const char *prefix);


/*
 * NANP (US, CA) numbers are 10 digits after the "1" that is both the
 * calling code and the trunk prefix; Italy and San Marino keep the
 * leading 0 of fixed lines, so they have no trunk prefix; Hungary dials
 * "06"; Lithuania dials "0" since March 2025 (no longer "8"); Russia
 * still dials "8", and "8 10" abroad.  Countries that share a calling
 * code and plan with a larger one (Kazakhstan, the Caribbean NANP
 * members...) are not listed: a national number there is declined.
 */

static const loyalty_phone_country_t  loyalty_phone_countries[] = {
    { "AE", "971", "0", "" },
    { "AR", "54", "0", "" },
    { "AT", "43", "0", "" },
    { "AU", "61", "0", "0011" },
    { "BE", "32", "0", "" },
    { "BG", "359", "0", "" },
    { "BR", "55", "0", "" },
    { "CA", "1", "1", "011" },
    { "CH", "41", "0", "" },
    { "CL", "56", "", "" },
    { "CN", "86", "0", "" },
    { "CO", "57", "", "" },
    { "CY", "357", "", "" },
    { "CZ", "420", "", "" },
    { "DE", "49", "0", "" },
    { "DK", "45", "", "" },
    { "EE", "372", "", "" },
    { "EG", "20", "0", "" },
    { "ES", "34", "", "" },
    { "FI", "358", "0", "" },
    { "FR", "33", "0", "" },
    { "GB", "44", "0", "" },
    { "GR", "30", "", "" },
    { "HK", "852", "", "" },
    { "HR", "385", "0", "" },
    { "HU", "36", "06", "" },
    { "ID", "62", "0", "" },
    { "IE", "353", "0", "" },
    { "IL", "972", "0", "" },
    { "IN", "91", "0", "" },
    { "IS", "354", "", "" },
    { "IT", "39", "", "" },
    { "JP", "81", "0", "010" },
    { "KE", "254", "0", "" },
    { "KR", "82", "0", "" },
    { "LI", "423", "", "" },
    { "LT", "370", "0", "" },
    { "LU", "352", "", "" },
    { "LV", "371", "", "" },
    { "MA", "212", "0", "" },
    { "MC", "377", "", "" },
    { "MT", "356", "", "" },
    { "MX", "52", "", "" },
    { "MY", "60", "0", "" },
    { "NG", "234", "0", "" },
    { "NL", "31", "0", "" },
    { "NO", "47", "", "" },
    { "NZ", "64", "0", "" },
    { "PE", "51", "0", "" },
    { "PH", "63", "0", "" },
    { "PL", "48", "", "" },
    { "PT", "351", "", "" },
    { "QA", "974", "", "" },
    { "RO", "40", "0", "" },
    { "RS", "381", "0", "" },
    { "RU", "7", "8", "810" },
    { "SA", "966", "0", "" },
    { "SE", "46", "0", "" },
    { "SG", "65", "", "" },
    { "SI", "386", "0", "" },
    { "SK", "421", "0", "" },
    { "SM", "378", "", "" },
    { "TH", "66", "0", "" },
    { "TR", "90", "0", "" },
    { "TW", "886", "0", "" },
    { "UA", "380", "0", "" },
    { "US", "1", "1", "011" },
    { "VN", "84", "0", "" },
    { "ZA", "27", "0", "" }
};


int
loyalty_identity_email(const loyalty_str_t *in, const loyalty_alloc_t *a,
    loyalty_str_t *out)
{
    u_char        *p, ch;
    size_t         len, i, at, dot;
    const u_char  *s;

    s = in->data;
    len = in->len;

    while (len && (*s == ' ' || *s == '\t')) {
        s++;
        len--;
    }

    while (len && (s[len - 1] == ' ' || s[len - 1] == '\t')) {
        len--;
    }

    if (len < 3 || len > LOYALTY_EMAIL_MAX) {
        return LOYALTY_DECLINED;
    }

    at = len;
    dot = 0;

    for (i = 0; i < len; i++) {
        ch = s[i];

        if (ch <= 0x20 || ch == 0x7f || ch == ',' || ch == '<' || ch == '>'
            || ch == '(' || ch == ')' || ch == ';' || ch == '"')
        {
            return LOYALTY_DECLINED;
        }

        if (ch == '@') {
            if (at != len) {
                return LOYALTY_DECLINED;
            }
            at = i;

        } else if (ch == '.' && at != len) {
            /* no empty label: "a@.b.c", "a@b..c" */
            if (i == at + 1 || s[i - 1] == '.') {
                return LOYALTY_DECLINED;
            }
            dot = i;
        }
    }

    /* local@domain.tld: non-empty local part, a dot inside the domain */
    if (at == 0 || at == len || dot <= at + 1 || dot == len - 1) {
        return LOYALTY_DECLINED;
    }

    p = a->alloc(a->ctx, len + 1);
    if (p == NULL) {
        return LOYALTY_ERROR;
    }

    for (i = 0; i < len; i++) {
        ch = s[i];
        p[i] = (ch >= 'A' && ch <= 'Z') ? (u_char) (ch | 0x20) : ch;
    }

    p[len] = '\0';

    out->data = p;
    out->len = len;

    return LOYALTY_OK;
}


int
loyalty_identity_phone(const loyalty_str_t *in, const char *country,
    const loyalty_alloc_t *a, loyalty_str_t *out)
{
    int                             intl;
    u_char                          digits[LOYALTY_PHONE_DIGITS], ch, *p;
    size_t                          i, n, from, paren, code_len, len;
    const u_char                   *s;
    const loyalty_phone_country_t  *c;

    s = in->data;
    n = 0;
    intl = 0;
    paren = LOYALTY_PHONE_DIGITS;

    for (i = 0; i < in->len; i++) {
        ch = s[i];

        if (ch >= '0' && ch <= '9') {
            if (n == LOYALTY_PHONE_DIGITS) {
                return LOYALTY_DECLINED;
            }

            /* "+44 (0)20 ...": the trunk prefix shown in a full number */
            if (ch == '0' && i > 0 && s[i - 1] == '(' && i + 1 < in->len
                && s[i + 1] == ')' && paren == LOYALTY_PHONE_DIGITS)
            {
                paren = n;
            }

            digits[n++] = ch;
            continue;
        }

        switch (ch) {

        case ' ':
        case '-':
        case '.':
        case '(':
        case ')':
            break;

        case '+':
            /* only before the first digit, and once */
            if (intl || n) {
                return LOYALTY_DECLINED;
            }

            intl = 1;
            break;

        default:
            return LOYALTY_DECLINED;    /* letters, '/', '#', tabs... */
        }
    }

    if (n == 0) {
        return LOYALTY_DECLINED;
    }

    c = loyalty_phone_country(country);
    from = 0;

    /*
     * Without a '+', the country's own international prefix is tried
     * before "00": AU's "0011 44..." is not "00" and a number "1144...".
     */

    if (!intl && c != NULL && loyalty_phone_prefix(digits, n, c->exit)) {
        from = strlen(c->exit);
        intl = 1;

    } else if (!intl && loyalty_phone_prefix(digits, n, "00")) {
        from = 2;
        intl = 1;
    }

    if (intl) {
        /* the "(0)" is dropped only right after a 1-3 digit calling code */
        if (paren > from && paren <= from + 3) {
            memmove(digits + paren, digits + paren + 1, n - paren - 1);
            n--;
        }

        /* no calling code starts with 0: "+0..." or "000..." */
        if (from == n || digits[from] == '0') {
            return LOYALTY_DECLINED;
        }

        code_len = 0;

    } else {
        if (c == NULL) {
            return LOYALTY_DECLINED;    /* national, country not known */
        }

        if (loyalty_phone_prefix(digits, n, c->trunk)) {
            from = strlen(c->trunk);
        }

        code_len = strlen(c->code);
    }

    len = code_len + n - from;

    if (len < 8 || len > LOYALTY_PHONE_MAX - 1) {
        return LOYALTY_DECLINED;
    }

    /* calling code 1 is NANP only, and its numbers are 1 + 10 digits */
    if ((code_len ? c->code[0] : digits[from]) == '1' && len != 11) {
        return LOYALTY_DECLINED;
    }

    p = a->alloc(a->ctx, len + 2);
    if (p == NULL) {
        return LOYALTY_ERROR;
    }

    p[0] = '+';

    if (code_len) {
        memcpy(p + 1, c->code, code_len);
    }

    memcpy(p + 1 + code_len, digits + from, n - from);
    p[len + 1] = '\0';

    out->data = p;
    out->len = len + 1;

    return LOYALTY_OK;
}


int
loyalty_identity_country_known(const char *country)
{
    return loyalty_phone_country(country) != NULL;
}


/* the table entry of an alpha-2 code in either case, or NULL */

static const loyalty_phone_country_t *
loyalty_phone_country(const char *country)
{
    char    iso[2];
    size_t  i;

    if (country == NULL) {
        return NULL;
    }

    for (i = 0; i < 2; i++) {
        if (country[i] >= 'a' && country[i] <= 'z') {
            iso[i] = (char) (country[i] & ~0x20);

        } else if (country[i] >= 'A' && country[i] <= 'Z') {
            iso[i] = country[i];

        } else {
            return NULL;                /* also "" and "G" */
        }
    }

    if (country[2] != '\0') {
        return NULL;
    }

    for (i = 0; i < sizeof(loyalty_phone_countries)
                    / sizeof(loyalty_phone_countries[0]); i++)
    {
        if (loyalty_phone_countries[i].iso[0] == iso[0]
            && loyalty_phone_countries[i].iso[1] == iso[1])
        {
            return &loyalty_phone_countries[i];
        }
    }

    return NULL;
}


/* the digits start with prefix; an empty prefix never matches */

static int
loyalty_phone_prefix(const u_char *digits, size_t n, const char *prefix)
{
    size_t  len;

    len = strlen(prefix);

    return len != 0 && len <= n && memcmp(digits, prefix, len) == 0;
}
