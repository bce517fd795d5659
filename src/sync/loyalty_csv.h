/*
 * Copyright (C) loyalty-edge authors
 *
 * RFC 4180 CSV as Bulk API 2.0 takes and returns it (apis.md §11.6):
 * comma-separated, LF line endings, fields quoted when they hold a comma,
 * a quote, CR or LF or edge spaces, quotes doubled.  The writer appends
 * to a growing buffer in the caller's allocator (sticky failure, like
 * loyalty_jw); the reader walks records and fields in place.
 */

#ifndef _LOYALTY_CSV_H_INCLUDED_
#define _LOYALTY_CSV_H_INCLUDED_


#include "loyalty_core.h"


typedef struct {
    u_char                   *start;
    u_char                   *pos;
    u_char                   *end;
    const loyalty_alloc_t    *alloc;
    unsigned                  fields;   /* in the current row */
    unsigned                  failed:1;
} loyalty_csv_t;


void loyalty_csv_init(loyalty_csv_t *c, const loyalty_alloc_t *a,
    size_t hint);
void loyalty_csv_field(loyalty_csv_t *c, const loyalty_str_t *value);
void loyalty_csv_cfield(loyalty_csv_t *c, const char *value);
void loyalty_csv_row_end(loyalty_csv_t *c);
int loyalty_csv_finish(loyalty_csv_t *c, loyalty_str_t *out);


typedef struct {
    const u_char             *pos;
    const u_char             *end;
    const loyalty_alloc_t    *alloc;
    size_t                    line;     /* of the record being read */
} loyalty_csv_reader_t;


void loyalty_csv_reader_init(loyalty_csv_reader_t *r,
    const loyalty_str_t *text, const loyalty_alloc_t *a);

/*
 * The next record's fields into fields[0..max), unquoted (into memory
 * from the allocator when a field had doubled quotes); *n says how many.
 * LOYALTY_OK; LOYALTY_DECLINED at the end of the text;
 * LOYALTY_ERROR with err for a malformed record (an unterminated quote,
 * text after a closing quote, more than max fields).
 */
int loyalty_csv_next(loyalty_csv_reader_t *r, loyalty_str_t *fields,
    size_t max, size_t *n, loyalty_err_t *err);


#endif /* _LOYALTY_CSV_H_INCLUDED_ */
