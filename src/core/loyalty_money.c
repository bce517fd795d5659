/*
 * Copyright (C) loyalty-edge authors
 */


#include <string.h>

#include "loyalty_money.h"


#define LOYALTY_EXPONENT_MAX  18         /* 10^18 is the largest in int64 */


static int loyalty_currency_in(const char *code, const char *const *list);


/*
 * ISO 4217 currencies whose minor unit is not the usual hundredth.  The
 * funds codes with four places (CLF, UYW) and the codes without a minor
 * unit (XAU, XDR...) are left at 2: an exponent is 0, 2 or 3.
 */

static const char *const  loyalty_currency_exp0[] = {
    "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG",
    "RWF", "UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF", NULL
};

static const char *const  loyalty_currency_exp3[] = {
    "BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND", NULL
};


int
loyalty_currency_code(const loyalty_str_t *in, char out[4])
{
    size_t  i;
    u_char  ch;

    if (in->len != 3) {
        return LOYALTY_DECLINED;
    }

    for (i = 0; i < 3; i++) {
        ch = in->data[i];

        if (ch >= 'a' && ch <= 'z') {
            ch = (u_char) (ch & ~0x20);
        }

        if (ch < 'A' || ch > 'Z') {
            return LOYALTY_DECLINED;
        }

        out[i] = (char) ch;
    }

    out[3] = '\0';

    return LOYALTY_OK;
}


int
loyalty_currency_exponent(const char *code)
{
    char    up[4];
    size_t  i;

    if (code == NULL) {
        return 2;
    }

    /* lower case is upper-cased so that a slip cannot scale by 100 */

    for (i = 0; i < 3; i++) {
        if (code[i] >= 'a' && code[i] <= 'z') {
            up[i] = (char) (code[i] & ~0x20);

        } else if (code[i] >= 'A' && code[i] <= 'Z') {
            up[i] = code[i];

        } else {
            return 2;                       /* also a short string */
        }
    }

    if (code[3] != '\0') {
        return 2;
    }

    up[3] = '\0';

    if (loyalty_currency_in(up, loyalty_currency_exp0)) {
        return 0;
    }

    if (loyalty_currency_in(up, loyalty_currency_exp3)) {
        return 3;
    }

    return 2;
}


static int
loyalty_currency_in(const char *code, const char *const *list)
{
    for ( /* void */ ; *list != NULL; list++) {
        if (strcmp(*list, code) == 0) {
            return 1;
        }
    }

    return 0;
}


int
loyalty_decimal_scaled(const loyalty_str_t *text, int exponent,
    int64_t *out)
{
    int            neg, places;
    size_t         i, len;
    uint64_t       n, d, max;
    const u_char  *p;

    if (exponent < 0 || exponent > LOYALTY_EXPONENT_MAX) {
        return LOYALTY_DECLINED;
    }

    p = text->data;
    len = text->len;
    i = 0;

    neg = (len > 0 && p[0] == '-');

    if (neg) {
        i++;
    }

    /* at least one digit before any point: ".5" and "-.5" decline */
    if (i == len || p[i] < '0' || p[i] > '9') {
        return LOYALTY_DECLINED;
    }

    /* the magnitude is built unsigned; INT64_MIN has no positive twin */
    max = neg ? (uint64_t) INT64_MAX + 1 : (uint64_t) INT64_MAX;
    n = 0;

    while (i < len && p[i] >= '0' && p[i] <= '9') {
        d = p[i++] - '0';

        if (n > (max - d) / 10) {
            return LOYALTY_DECLINED;
        }

        n = n * 10 + d;
    }

    places = 0;

    if (i < len) {
        if (p[i] != '.') {
            return LOYALTY_DECLINED;        /* '+', 'e', ',', space... */
        }

        i++;

        /* at least one digit after the point: "5." declines */
        if (i == len) {
            return LOYALTY_DECLINED;
        }

        for ( /* void */ ; i < len; i++) {
            if (p[i] < '0' || p[i] > '9') {
                return LOYALTY_DECLINED;
            }

            d = p[i] - '0';

            if (places == exponent) {
                /* finer than the unit: only zeros may follow */
                if (d != 0) {
                    return LOYALTY_DECLINED;
                }

                continue;
            }

            if (n > (max - d) / 10) {
                return LOYALTY_DECLINED;
            }

            n = n * 10 + d;
            places++;
        }
    }

    /* fraction digits not written count as zeros: "49" is 4900 at 2 */

    for ( /* void */ ; places < exponent; places++) {
        if (n > max / 10) {
            return LOYALTY_DECLINED;
        }

        n *= 10;
    }

    if (!neg) {
        *out = (int64_t) n;

    } else if (n == (uint64_t) INT64_MAX + 1) {
        *out = INT64_MIN;

    } else {
        *out = -(int64_t) n;
    }

    return LOYALTY_OK;
}
