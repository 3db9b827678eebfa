/* eval/score_mmbench.c — MMBench / MMBench-CN: upstream convert_mmbench_for_submission.py (the
 * upload table: the annotation TSV read as pandas does, six columns dropped, an empty
 * "prediction" column inserted at position 6, each answer line's text set on the rows whose
 * index equals its question_id, later lines winning) written as the .xlsx the MMBench server
 * takes (openpyxl's layout: inline strings, sheet "Sheet1", bold header, no index column) plus
 * the same table as JSON (the sheet as openpyxl reads it back: null = empty cell); and, NOT
 * upstream, a local circular evaluation where the TSV has ground truth (rows whose index differs
 * by a multiple of 1,000,000 form one question; letters extracted with VLMEvalKit's can_infer
 * heuristics, no ChatGPT step). Prints nothing (upstream prints nothing). Must not call out to
 * any server, and must not alter rows: an empty answer stays an empty cell like upstream's. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "common/pytext.h"
#include "eval/eval_prompt.h"
#include "eval/score.h"
#include "eval/tsv.h"

#define MMBENCH_SPLIT_EN "mmbench_dev_20230712"
#define MMBENCH_SPLIT_CN "mmbench_dev_cn_20231003"
#define CIRCULAR_STRIDE 1000000LL

/* ------------------------------------------------------------------ the upload table */

/* One cell of the upload table: a TSV cell (column type known) or a prediction value. */
typedef struct {
    int kind;      /* 0 empty, 1 string, 2 int, 3 float, 4 bool */
    const char *s; /* kind 1 */
    long long i;   /* kind 2 */
    double d;      /* kind 3 */
    int b;         /* kind 4 */
} ucell;

typedef struct {
    size_t n_cols, n_rows; /* data rows */
    char **names;          /* borrowed */
    ucell *cells;          /* n_rows * n_cols */
} utable;

static ucell cell_from_tsv(const vr_tsv_table *t, size_t r, size_t c) {
    ucell u = {0};
    const vr_tsv_cell *x = vr_tsv_at(t, r, c);
    if (x->na) return u;
    switch (t->types[c]) {
    case VR_TSV_INT:
        u.kind = 2;
        u.i = x->i;
        break;
    case VR_TSV_FLOAT:
        u.kind = 3;
        u.d = x->d;
        break;
    case VR_TSV_BOOL:
        u.kind = 4;
        u.b = x->b;
        break;
    case VR_TSV_STRING:
        u.kind = x->text[0] ? 1 : 0;
        u.s = x->text;
        break;
    }
    return u;
}

/* pandas/openpyxl: None and "" become empty cells; numbers stay numbers. */
static ucell cell_from_json(const cJSON *v) {
    ucell u = {0};
    if (cJSON_IsString(v)) {
        u.kind = v->valuestring[0] ? 1 : 0;
        u.s = v->valuestring;
    } else if (cJSON_IsNumber(v)) {
        double x = v->valuedouble;
        if (x == trunc(x) && fabs(x) < 9.2e18) {
            u.kind = 2;
            u.i = (long long)x;
        } else {
            u.kind = 3;
            u.d = x;
        }
    } else if (cJSON_IsBool(v)) {
        u.kind = 4;
        u.b = cJSON_IsTrue(v);
    }
    return u;
}

static cJSON *ucell_json(const ucell *u) {
    switch (u->kind) {
    case 1: return cJSON_CreateString(u->s);
    case 2: return cJSON_CreateNumber((double)u->i);
    case 3:
        if (!isfinite(u->d)) return cJSON_CreateString(u->d > 0 ? "inf" : u->d < 0 ? "-inf" : "");
        return cJSON_CreateNumber(u->d);
    case 4: return cJSON_CreateBool(u->b);
    }
    return cJSON_CreateNull();
}

/* ------------------------------------------------------------------ xlsx */

/* XML 1.0 forbids these; openpyxl raises IllegalCharacterError for the C0 ones. */
static int xml_illegal(uint32_t cp) {
    return (cp < 0x20 && cp != '\t' && cp != '\n' && cp != '\r') || cp == 0xFFFE || cp == 0xFFFF || VR_UTF8_IS_BAD(cp);
}

static long first_illegal(const char *s) {
    size_t n = strlen(s), i = 0;
    while (i < n) {
        size_t at = i;
        if (xml_illegal(vr_utf8_decode_next(s, n, &i))) return (long)at;
    }
    return -1;
}

static void xml_text(vr_strbuf *b, const char *s) {
    for (const char *p = s; *p; p++) {
        switch (*p) {
        case '&': vr_strbuf_append_str(b, "&amp;"); break;
        case '<': vr_strbuf_append_str(b, "&lt;"); break;
        case '>': vr_strbuf_append_str(b, "&gt;"); break;
        case '\r': vr_strbuf_append_str(b, "&#13;"); break;
        default: vr_strbuf_append(b, p, 1);
        }
    }
}

static void col_name(size_t c, char out[16]) {
    char tmp[16];
    int k = 0;
    c++;
    while (c > 0 && k < 15) {
        c--;
        tmp[k++] = (char)('A' + c % 26);
        c /= 26;
    }
    for (int i = 0; i < k; i++) out[i] = tmp[k - 1 - i];
    out[k] = 0;
}

static void sheet_string_cell(vr_strbuf *b, const char *ref, const char *s, int header) {
    vr_strbuf_printf(b, "<c r=\"%s\"%s t=\"inlineStr\"><is><t", ref, header ? " s=\"1\"" : "");
    size_t a = 0, e = 0, n = strlen(s);
    vr_py_strip(s, n, &a, &e);
    if (a != 0 || e != n) vr_strbuf_append_str(b, " xml:space=\"preserve\"");
    vr_strbuf_append_str(b, ">");
    xml_text(b, s);
    vr_strbuf_append_str(b, "</t></is></c>");
}

static void sheet_xml(vr_strbuf *b, const utable *t) {
    char last[16];
    col_name(t->n_cols ? t->n_cols - 1 : 0, last);
    vr_strbuf_append_str(b, "<worksheet xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\"><sheetPr>"
                            "<outlinePr summaryBelow=\"1\" summaryRight=\"1\"/><pageSetUpPr/></sheetPr>");
    vr_strbuf_printf(b, "<dimension ref=\"A1:%s%zu\"/>", last, t->n_rows + 1);
    vr_strbuf_append_str(b, "<sheetViews><sheetView workbookViewId=\"0\"><selection activeCell=\"A1\" sqref=\"A1\"/>"
                            "</sheetView></sheetViews><sheetFormatPr baseColWidth=\"8\" defaultRowHeight=\"15\"/>"
                            "<sheetData><row r=\"1\">");
    char ref[48], cn[16];
    for (size_t c = 0; c < t->n_cols; c++) {
        col_name(c, cn);
        snprintf(ref, sizeof ref, "%s1", cn);
        sheet_string_cell(b, ref, t->names[c], 1);
    }
    vr_strbuf_append_str(b, "</row>");
    for (size_t r = 0; r < t->n_rows; r++) {
        vr_strbuf_printf(b, "<row r=\"%zu\">", r + 2);
        for (size_t c = 0; c < t->n_cols; c++) {
            const ucell *u = &t->cells[r * t->n_cols + c];
            col_name(c, cn);
            snprintf(ref, sizeof ref, "%s%zu", cn, r + 2);
            char num[VR_PY_REPR_MAX];
            switch (u->kind) {
            case 1: sheet_string_cell(b, ref, u->s, 0); break;
            case 2: vr_strbuf_printf(b, "<c r=\"%s\" t=\"n\"><v>%lld</v></c>", ref, u->i); break;
            case 3:
                if (isfinite(u->d)) {
                    vr_py_float_repr(u->d, num);
                    vr_strbuf_printf(b, "<c r=\"%s\" t=\"n\"><v>%s</v></c>", ref, num);
                } else {
                    /* pandas writes inf as the string "inf" (inf_rep) */
                    sheet_string_cell(b, ref, u->d > 0 ? "inf" : "-inf", 0);
                }
                break;
            case 4: vr_strbuf_printf(b, "<c r=\"%s\" t=\"b\"><v>%d</v></c>", ref, u->b ? 1 : 0); break;
            default: vr_strbuf_printf(b, "<c r=\"%s\" t=\"inlineStr\"></c>", ref); break;
            }
        }
        vr_strbuf_append_str(b, "</row>");
    }
    vr_strbuf_append_str(b, "</sheetData><pageMargins left=\"0.75\" right=\"0.75\" top=\"1\" bottom=\"1\" "
                            "header=\"0.5\" footer=\"0.5\"/></worksheet>");
}

static const char XLSX_CONTENT_TYPES[] =
    "<Types xmlns=\"http://schemas.openxmlformats.org/package/2006/content-types\">"
    "<Default Extension=\"rels\" ContentType=\"application/vnd.openxmlformats-package.relationships+xml\"/>"
    "<Default Extension=\"xml\" ContentType=\"application/xml\"/>"
    "<Override PartName=\"/xl/styles.xml\" "
    "ContentType=\"application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml\"/>"
    "<Override PartName=\"/docProps/app.xml\" "
    "ContentType=\"application/vnd.openxmlformats-officedocument.extended-properties+xml\"/>"
    "<Override PartName=\"/xl/worksheets/sheet1.xml\" "
    "ContentType=\"application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml\"/>"
    "<Override PartName=\"/xl/workbook.xml\" "
    "ContentType=\"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml\"/></Types>";
static const char XLSX_RELS[] =
    "<Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\">"
    "<Relationship Type=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument\" "
    "Target=\"xl/workbook.xml\" Id=\"rId1\"/>"
    "<Relationship Type=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships/extended-properties\" "
    "Target=\"docProps/app.xml\" Id=\"rId3\"/></Relationships>";
static const char XLSX_APP[] =
    "<Properties xmlns=\"http://schemas.openxmlformats.org/officeDocument/2006/extended-properties\">"
    "<Application>Microsoft Excel</Application><AppVersion>3.0</AppVersion></Properties>";
static const char XLSX_WORKBOOK[] =
    "<workbook xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\"><workbookPr/>"
    "<bookViews><workbookView visibility=\"visible\" minimized=\"0\" showHorizontalScroll=\"1\" "
    "showVerticalScroll=\"1\" showSheetTabs=\"1\" tabRatio=\"600\" firstSheet=\"0\" activeTab=\"0\"/></bookViews>"
    "<sheets><sheet xmlns:r=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships\" "
    "name=\"Sheet1\" sheetId=\"1\" state=\"visible\" r:id=\"rId1\"/></sheets><definedNames/>"
    "<calcPr calcId=\"124519\" fullCalcOnLoad=\"1\"/></workbook>";
static const char XLSX_WORKBOOK_RELS[] =
    "<Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\">"
    "<Relationship Type=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet\" "
    "Target=\"/xl/worksheets/sheet1.xml\" Id=\"rId1\"/>"
    "<Relationship Type=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles\" "
    "Target=\"styles.xml\" Id=\"rId2\"/></Relationships>";
static const char XLSX_STYLES[] =
    "<styleSheet xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\"><numFmts count=\"0\"/>"
    "<fonts count=\"2\"><font><name val=\"Calibri\"/><family val=\"2\"/><sz val=\"11\"/>"
    "<scheme val=\"minor\"/></font><font><b val=\"1\"/></font></fonts>"
    "<fills count=\"2\"><fill><patternFill/></fill><fill><patternFill patternType=\"gray125\"/></fill></fills>"
    "<borders count=\"2\"><border><left/><right/><top/><bottom/><diagonal/></border><border>"
    "<left style=\"thin\"/><right style=\"thin\"/><top style=\"thin\"/><bottom style=\"thin\"/></border></borders>"
    "<cellStyleXfs count=\"1\"><xf numFmtId=\"0\" fontId=\"0\" fillId=\"0\" borderId=\"0\"/></cellStyleXfs>"
    "<cellXfs count=\"2\"><xf numFmtId=\"0\" fontId=\"0\" fillId=\"0\" borderId=\"0\" xfId=\"0\"/>"
    "<xf numFmtId=\"0\" fontId=\"1\" fillId=\"0\" borderId=\"1\" applyAlignment=\"1\" xfId=\"0\">"
    "<alignment horizontal=\"center\" vertical=\"top\"/></xf></cellXfs>"
    "<cellStyles count=\"1\"><cellStyle name=\"Normal\" xfId=\"0\" builtinId=\"0\"/></cellStyles></styleSheet>";

static void put16(vr_strbuf *b, unsigned v) {
    unsigned char x[2] = {(unsigned char)(v & 0xFF), (unsigned char)(v >> 8 & 0xFF)};
    vr_strbuf_append(b, x, 2);
}
static void put32(vr_strbuf *b, unsigned long v) {
    unsigned char x[4] = {(unsigned char)(v & 0xFF), (unsigned char)(v >> 8 & 0xFF), (unsigned char)(v >> 16 & 0xFF),
                          (unsigned char)(v >> 24 & 0xFF)};
    vr_strbuf_append(b, x, 4);
}

/* A zip of stored (uncompressed) members with a fixed date (1980-01-01), so the same table
 * always gives the same bytes. Sizes are limited to 4 GiB (no zip64). */
static vr_status zip_stored(vr_strbuf *out, const char *const *names, const char *const *data, const size_t *sizes,
                            int n, vr_error *err) {
    unsigned long offs[16];
    unsigned long crcs[16];
    if (n > 16) return vr_error_set(err, VR_ERR_INTERNAL, "too many zip members");
    for (int i = 0; i < n; i++) {
        if (sizes[i] >= 0xFFFFFFFFu || out->n >= 0xFFFFFFFFu)
            return vr_error_set(err, VR_ERR_UNSUPPORTED, "the upload sheet is too large for a zip without zip64");
        crcs[i] = crc32(crc32(0L, Z_NULL, 0), (const Bytef *)data[i], (uInt)sizes[i]);
        offs[i] = (unsigned long)out->n;
        put32(out, 0x04034b50);
        put16(out, 20);
        put16(out, 0);
        put16(out, 0); /* stored */
        put16(out, 0);
        put16(out, 0x21); /* 1980-01-01 */
        put32(out, crcs[i]);
        put32(out, (unsigned long)sizes[i]);
        put32(out, (unsigned long)sizes[i]);
        put16(out, (unsigned)strlen(names[i]));
        put16(out, 0);
        vr_strbuf_append_str(out, names[i]);
        vr_strbuf_append(out, data[i], sizes[i]);
    }
    unsigned long cd = (unsigned long)out->n;
    for (int i = 0; i < n; i++) {
        put32(out, 0x02014b50);
        put16(out, 20);
        put16(out, 20);
        put16(out, 0);
        put16(out, 0);
        put16(out, 0);
        put16(out, 0x21);
        put32(out, crcs[i]);
        put32(out, (unsigned long)sizes[i]);
        put32(out, (unsigned long)sizes[i]);
        put16(out, (unsigned)strlen(names[i]));
        put16(out, 0);
        put16(out, 0);
        put16(out, 0);
        put16(out, 0);
        put32(out, 0);
        put32(out, offs[i]);
        vr_strbuf_append_str(out, names[i]);
    }
    unsigned long cd_size = (unsigned long)out->n - cd;
    put32(out, 0x06054b50);
    put16(out, 0);
    put16(out, 0);
    put16(out, (unsigned)n);
    put16(out, (unsigned)n);
    put32(out, cd_size);
    put32(out, cd);
    put16(out, 0);
    return out->oom ? vr_error_set(err, VR_ERR_NOMEM, "out of memory writing the xlsx") : VR_OK;
}

static vr_status xlsx_bytes(const utable *t, vr_strbuf *out, vr_error *err) {
    vr_strbuf sheet = {0};
    sheet_xml(&sheet, t);
    if (sheet.oom) {
        vr_strbuf_free(&sheet);
        return vr_error_set(err, VR_ERR_NOMEM, "out of memory writing the xlsx");
    }
    const char *names[] = {"[Content_Types].xml", "_rels/.rels",   "docProps/app.xml", "xl/workbook.xml",
                           "xl/_rels/workbook.xml.rels", "xl/styles.xml", "xl/worksheets/sheet1.xml"};
    const char *data[] = {XLSX_CONTENT_TYPES, XLSX_RELS, XLSX_APP, XLSX_WORKBOOK, XLSX_WORKBOOK_RELS, XLSX_STYLES,
                          sheet.p};
    size_t sizes[] = {sizeof XLSX_CONTENT_TYPES - 1, sizeof XLSX_RELS - 1, sizeof XLSX_APP - 1,
                      sizeof XLSX_WORKBOOK - 1, sizeof XLSX_WORKBOOK_RELS - 1, sizeof XLSX_STYLES - 1, sheet.n};
    vr_status st = zip_stored(out, names, data, sizes, 7, err);
    vr_strbuf_free(&sheet);
    return st;
}

/* ------------------------------------------------------------------ circular evaluation */

/* VLMEvalKit can_infer_option: the text with . ( ) [ ] , : ; ! * # { } made spaces, split on
 * whitespace; exactly one option letter among the words gives that letter. */
static char infer_option(const char *ans, const char *letters) {
    vr_strbuf m = {0};
    vr_py_replace_chars(&m, ans, strlen(ans), ".()[],:;!*#{}", " ");
    vr_span *w = NULL;
    size_t nw = 0;
    char found = 0;
    int count = 0;
    if (!m.oom && vr_py_split_ws(m.p ? m.p : "", m.n, &w, &nw, NULL) == VR_OK) {
        for (const char *l = letters; *l; l++) {
            for (size_t k = 0; k < nw; k++) {
                if (w[k].len == 1 && m.p[w[k].off] == *l) {
                    count++;
                    found = *l;
                    break;
                }
            }
        }
    }
    free(w);
    vr_strbuf_free(&m);
    return count == 1 ? found : 0;
}

/* VLMEvalKit can_infer_text: exactly one option whose lower-cased text is inside the
 * lower-cased answer. */
static char infer_text(const char *ans, const char *letters, const char *const texts[4]) {
    char *la = vr_py_lower(ans, strlen(ans), NULL);
    char found = 0;
    int count = 0;
    for (int k = 0; la && letters[k]; k++) {
        int idx = letters[k] - 'A';
        char *lt = vr_py_lower(texts[idx], strlen(texts[idx]), NULL);
        if (lt && strstr(la, lt)) {
            count++;
            found = letters[k];
        }
        free(lt);
    }
    free(la);
    return count == 1 ? found : 0;
}

/* The text of an option cell as str() gives it (numbers as Python prints them). */
static const char *option_text(const ucell *u, char buf[VR_PY_REPR_MAX + 8]) {
    switch (u->kind) {
    case 1: return u->s;
    case 2: snprintf(buf, VR_PY_REPR_MAX + 8, "%lld", u->i); return buf;
    case 3: vr_py_float_repr(u->d, buf); return buf;
    case 4: return u->b ? "True" : "False";
    }
    return NULL;
}

typedef struct {
    long long index;
    char pred_letter; /* 0: none extracted */
    char answer;
    int missing;
    size_t row;
} crow;

static cJSON *circular_eval(const vr_tsv_table *tsv, const utable *ut, size_t pred_col, const int *has_pred,
                            vr_strbuf *warn) {
    long idx_c = vr_tsv_col(tsv, "index"), ans_c = vr_tsv_col(tsv, "answer"), cat_c = vr_tsv_col(tsv, "category");
    if (idx_c < 0 || ans_c < 0 || tsv->types[idx_c] != VR_TSV_INT) return NULL;
    long opt_c[4];
    static const char *const L[4] = {"A", "B", "C", "D"};
    for (int k = 0; k < 4; k++) opt_c[k] = vr_tsv_col(tsv, L[k]);
    crow *rows = calloc(tsv->n_rows + 1, sizeof *rows);
    if (!rows) return NULL;
    size_t n = 0;
    for (size_t r = 0; r < tsv->n_rows; r++) {
        const vr_tsv_cell *a = vr_tsv_at(tsv, r, (size_t)ans_c);
        if (a->na || tsv->types[ans_c] != VR_TSV_STRING || strlen(a->text) != 1 || a->text[0] < 'A' ||
            a->text[0] > 'D')
            continue; /* no ground truth */
        crow *c = &rows[n++];
        c->index = vr_tsv_at(tsv, r, (size_t)idx_c)->i;
        c->answer = a->text[0];
        c->row = r;
        c->missing = !has_pred[r];
        const ucell *p = &ut->cells[r * ut->n_cols + pred_col];
        char letters[5] = {0};
        const char *texts[4] = {0};
        char bufs[4][VR_PY_REPR_MAX + 8];
        int nl = 0;
        for (int k = 0; k < 4; k++) {
            if (opt_c[k] < 0) continue;
            ucell oc = cell_from_tsv(tsv, r, (size_t)opt_c[k]);
            if (oc.kind == 0) continue;
            texts[k] = option_text(&oc, bufs[k]);
            letters[nl++] = L[k][0];
        }
        char pbuf[VR_PY_REPR_MAX + 8];
        const char *ptext = p->kind ? option_text(p, pbuf) : "";
        c->pred_letter = infer_option(ptext, letters);
        if (!c->pred_letter) c->pred_letter = infer_text(ptext, letters, texts);
    }
    if (n == 0) {
        free(rows);
        return NULL;
    }
    cJSON *res = cJSON_CreateObject();
    cJSON_AddStringToObject(res, "note",
                            "NOT UPSTREAM: local circular evaluation. Rows whose index differs by a multiple of "
                            "1,000,000 are one question; it counts only if every copy is answered with the right "
                            "letter. Letters are extracted with VLMEvalKit's can_infer heuristics only (no ChatGPT "
                            "step), so the MMBench server's numbers can be higher.");
    cJSON *jrows = cJSON_AddArrayToObject(res, "rows");
    size_t vanilla_n = 0, vanilla_ok = 0, n_missing = 0;
    for (size_t i = 0; i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "index", (double)rows[i].index);
        char s[2] = {rows[i].answer, 0};
        cJSON_AddStringToObject(o, "answer", s);
        s[0] = rows[i].pred_letter;
        if (rows[i].pred_letter) cJSON_AddStringToObject(o, "extracted", s);
        else cJSON_AddNullToObject(o, "extracted");
        cJSON_AddBoolToObject(o, "missing", rows[i].missing);
        cJSON_AddBoolToObject(o, "correct", rows[i].pred_letter == rows[i].answer);
        cJSON_AddItemToArray(jrows, o);
        n_missing += (size_t)rows[i].missing;
        if (rows[i].index < CIRCULAR_STRIDE) {
            vanilla_n++;
            vanilla_ok += rows[i].pred_letter == rows[i].answer;
        }
    }
    /* groups in order of first appearance of their base index */
    cJSON *groups = cJSON_AddArrayToObject(res, "groups");
    cJSON *cats = cJSON_CreateObject();
    int *done = calloc(n + 1, sizeof *done);
    size_t n_groups = 0, n_correct = 0;
    for (size_t i = 0; done && i < n; i++) {
        if (done[i]) continue;
        long long base = rows[i].index % CIRCULAR_STRIDE;
        cJSON *g = cJSON_CreateObject();
        cJSON_AddNumberToObject(g, "index", (double)base);
        cJSON *copies = cJSON_AddArrayToObject(g, "copies");
        int ok = 1;
        const char *cat = NULL;
        for (size_t j = i; j < n; j++) {
            if (done[j] || rows[j].index % CIRCULAR_STRIDE != base) continue;
            done[j] = 1;
            cJSON_AddItemToArray(copies, cJSON_CreateNumber((double)rows[j].index));
            ok &= rows[j].pred_letter == rows[j].answer;
            if (cat_c >= 0 && (!cat || rows[j].index == base)) {
                const vr_tsv_cell *cc = vr_tsv_at(tsv, rows[j].row, (size_t)cat_c);
                if (!cc->na) cat = cc->text;
            }
        }
        cJSON_AddBoolToObject(g, "correct", ok);
        if (cat) cJSON_AddStringToObject(g, "category", cat);
        cJSON_AddItemToArray(groups, g);
        n_groups++;
        n_correct += (size_t)ok;
        if (cat) {
            cJSON *c = cJSON_GetObjectItemCaseSensitive(cats, cat);
            if (!c) {
                c = cJSON_CreateObject();
                cJSON_AddNumberToObject(c, "questions", 0);
                cJSON_AddNumberToObject(c, "correct", 0);
                cJSON_AddItemToObject(cats, cat, c);
            }
            cJSON *q = cJSON_GetObjectItemCaseSensitive(c, "questions"), *k = cJSON_GetObjectItemCaseSensitive(c, "correct");
            cJSON_SetNumberValue(q, q->valuedouble + 1);
            cJSON_SetNumberValue(k, k->valuedouble + ok);
        }
    }
    free(done);
    cJSON *c;
    cJSON_ArrayForEach(c, cats) {
        double q = cJSON_GetObjectItemCaseSensitive(c, "questions")->valuedouble;
        double k = cJSON_GetObjectItemCaseSensitive(c, "correct")->valuedouble;
        cJSON_AddNumberToObject(c, "accuracy", q > 0 ? 100.0 * k / q : 0.0);
    }
    cJSON_AddNumberToObject(res, "questions", (double)n_groups);
    cJSON_AddNumberToObject(res, "correct", (double)n_correct);
    cJSON_AddNumberToObject(res, "accuracy", n_groups ? 100.0 * (double)n_correct / (double)n_groups : 0.0);
    cJSON *v = cJSON_AddObjectToObject(res, "vanilla");
    cJSON_AddNumberToObject(v, "questions", (double)vanilla_n);
    cJSON_AddNumberToObject(v, "correct", (double)vanilla_ok);
    cJSON_AddNumberToObject(v, "accuracy", vanilla_n ? 100.0 * (double)vanilla_ok / (double)vanilla_n : 0.0);
    cJSON_AddItemToObject(res, "per_category", cats);
    cJSON_AddNumberToObject(res, "rows_without_answer", (double)n_missing);
    if (n_missing)
        vr_strbuf_printf(warn, "%zu rows with ground truth have no answer; the circular evaluation counts them as wrong",
                         n_missing);
    free(rows);
    return res;
}

/* ------------------------------------------------------------------ conversion */

static vr_status convert(const char *annotation, const char *answers, const char *xlsx_path, const char *table_path,
                         vr_score_report *rep, vr_error *err) {
    static const char *const DROP[6] = {"hint", "category", "source", "image", "comment", "l2-category"};
    vr_tsv_table tsv = {0};
    vr_jsonl res = {0};
    utable ut = {0};
    int *has_pred = NULL;
    size_t *keep = NULL, *row_next = NULL;
    vr_score_map rows_by_key = {0};
    vr_strbuf tmp = {0}, xb = {0}, jb = {0};
    cJSON *report = NULL;
    vr_status st = vr_tsv_read(annotation, &tsv, err);
    if (st != VR_OK) goto done;
    /* df.drop(columns=[...]): every listed column must exist */
    for (int k = 0; k < 6; k++)
        if (vr_tsv_col(&tsv, DROP[k]) < 0) vr_strbuf_printf(&tmp, "%s'%s'", tmp.n ? ", " : "", DROP[k]);
    if (tmp.n) {
        st = vr_error_set(err, VR_ERR_FORMAT,
                          "%s: the annotation TSV lacks the column(s) [%s] that convert_mmbench_for_submission.py "
                          "drops (upstream: KeyError: \"[%s] not found in axis\"); use the official MMBench TSV "
                          "with columns index question hint A B C D answer category image source l2-category "
                          "comment split",
                          annotation, tmp.p, tmp.p);
        goto done;
    }
    keep = calloc(tsv.n_cols + 1, sizeof *keep);
    if (!keep) goto oom;
    size_t nk = 0;
    for (size_t c = 0; c < tsv.n_cols; c++) {
        int dropped = 0;
        for (int k = 0; k < 6; k++) dropped |= strcmp(tsv.names[c], DROP[k]) == 0;
        if (!dropped) keep[nk++] = c;
    }
    /* cur_df.insert(6, 'prediction', None) */
    if (nk < 6) {
        st = vr_error_set(err, VR_ERR_FORMAT,
                          "%s: after dropping its hint/category/source/image/comment/l2-category columns only %zu "
                          "remain, but the prediction column goes at position 6 (upstream: IndexError)",
                          annotation, nk);
        goto done;
    }
    for (size_t k = 0; k < nk; k++)
        if (strcmp(tsv.names[keep[k]], "prediction") == 0) {
            st = vr_error_set(err, VR_ERR_FORMAT,
                              "%s: the TSV already has a \"prediction\" column (upstream: ValueError: cannot insert "
                              "prediction, already exists)",
                              annotation);
            goto done;
        }
    ut.n_cols = nk + 1;
    ut.n_rows = tsv.n_rows;
    ut.names = calloc(ut.n_cols, sizeof *ut.names);
    ut.cells = calloc(ut.n_cols * (ut.n_rows + 1), sizeof *ut.cells);
    has_pred = calloc(ut.n_rows + 1, sizeof *has_pred);
    if (!ut.names || !ut.cells || !has_pred) goto oom;
    const size_t PRED = 6;
    for (size_t c = 0, k = 0; c < ut.n_cols; c++) {
        if (c == PRED) {
            ut.names[c] = "prediction";
            continue;
        }
        size_t src = keep[k++];
        ut.names[c] = tsv.names[src];
        for (size_t r = 0; r < ut.n_rows; r++) ut.cells[r * ut.n_cols + c] = cell_from_tsv(&tsv, r, src);
    }
    /* the answers: every line must parse; later lines win */
    st = vr_score_read_jsonl(answers, 0, &res, err);
    if (st != VR_OK) goto done;
    long idx_c = vr_tsv_col(&tsv, "index");
    if (res.n && idx_c < 0) {
        st = vr_error_set(err, VR_ERR_FORMAT, "%s: the TSV has no \"index\" column to match answers to (upstream: KeyError)",
                          annotation);
        goto done;
    }
    /* rows by their index under Python equality (df['index'] == question_id); rows sharing an
     * index are chained */
    if (res.n) {
        row_next = malloc((tsv.n_rows + 1) * sizeof *row_next);
        if (!row_next) goto oom;
        for (size_t r = tsv.n_rows; r-- > 0;) {
            row_next[r] = SIZE_MAX;
            cJSON *cell = vr_tsv_cell_json(&tsv, r, (size_t)idx_c);
            if (!cell) goto oom;
            char *ck = cJSON_IsNull(cell) ? NULL : vr_score_id_key(cell);
            cJSON_Delete(cell);
            if (!ck) continue; /* NaN equals nothing */
            size_t first = 0;
            if (vr_score_map_get(&rows_by_key, ck, &first)) row_next[r] = first;
            vr_status ps = vr_score_map_put(&rows_by_key, ck, r);
            free(ck);
            if (ps != VR_OK) goto oom;
        }
    }
    size_t ignored = 0;
    for (size_t i = 0; i < res.n; i++) {
        const cJSON *qid = cJSON_GetObjectItemCaseSensitive(res.items[i], "question_id");
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(res.items[i], "text");
        if (!cJSON_IsObject(res.items[i]) || !qid || !text) {
            st = vr_error_set(err, VR_ERR_FORMAT,
                              "%s: line %zu needs \"question_id\" and \"text\" (upstream: KeyError)", answers,
                              res.line_no[i]);
            goto done;
        }
        char *qk = vr_score_id_key(qid);
        if (!qk) goto oom;
        size_t r = SIZE_MAX;
        if (!vr_score_map_get(&rows_by_key, qk, &r)) r = SIZE_MAX;
        free(qk);
        ignored += r == SIZE_MAX;
        for (; r != SIZE_MAX; r = row_next[r]) {
            ut.cells[r * ut.n_cols + PRED] = cell_from_json(text);
            has_pred[r] = 1;
        }
    }
    /* openpyxl refuses control characters: say which cell instead of writing a broken sheet */
    for (size_t r = 0; r < ut.n_rows; r++)
        for (size_t c = 0; c < ut.n_cols; c++) {
            const ucell *u = &ut.cells[r * ut.n_cols + c];
            if (u->kind != 1) continue;
            long at = first_illegal(u->s);
            if (at >= 0) {
                st = vr_error_set(err, VR_ERR_FORMAT,
                                  "%s: row %zu, column \"%s\" holds the control character 0x%02X, which an .xlsx "
                                  "cannot store (upstream openpyxl: IllegalCharacterError); remove it from the %s",
                                  annotation, r + 1, ut.names[c], (unsigned)(unsigned char)u->s[at],
                                  c == PRED ? "answer file" : "TSV");
                goto done;
            }
        }
    for (size_t c = 0; c < ut.n_cols; c++)
        if (first_illegal(ut.names[c]) >= 0) {
            st = vr_error_set(err, VR_ERR_FORMAT, "%s: a column name holds a control character an .xlsx cannot store",
                              annotation);
            goto done;
        }
    /* the table as openpyxl reads the sheet back */
    cJSON *table = cJSON_CreateArray();
    cJSON *hdr = cJSON_CreateArray();
    for (size_t c = 0; c < ut.n_cols; c++) cJSON_AddItemToArray(hdr, cJSON_CreateString(ut.names[c]));
    cJSON_AddItemToArray(table, hdr);
    for (size_t r = 0; r < ut.n_rows; r++) {
        cJSON *row = cJSON_CreateArray();
        for (size_t c = 0; c < ut.n_cols; c++) cJSON_AddItemToArray(row, ucell_json(&ut.cells[r * ut.n_cols + c]));
        cJSON_AddItemToArray(table, row);
    }
    st = xlsx_bytes(&ut, &xb, err);
    if (st != VR_OK) {
        cJSON_Delete(table);
        goto done;
    }
    vr_py_json_dump(&jb, table, -1, 0);
    vr_strbuf_append_str(&jb, "\n");
    if (jb.oom) {
        cJSON_Delete(table);
        goto oom;
    }
    st = vr_score_write_output(xlsx_path, xb.p, xb.n, rep, err);
    if (st == VR_OK) st = vr_score_write_output(table_path, jb.p, jb.n, rep, err);
    if (st != VR_OK) {
        cJSON_Delete(table);
        goto done;
    }
    report = cJSON_CreateObject();
    cJSON_AddStringToObject(report, "annotation_file", annotation);
    cJSON_AddStringToObject(report, "answers_file", answers);
    cJSON_AddStringToObject(report, "upload_file", xlsx_path);
    cJSON_AddStringToObject(report, "upload_table_file", table_path);
    cJSON_AddNumberToObject(report, "rows", (double)ut.n_rows);
    cJSON_AddNumberToObject(report, "answer_lines", (double)res.n);
    size_t n_with = 0;
    for (size_t r = 0; r < ut.n_rows; r++) n_with += (size_t)has_pred[r];
    cJSON_AddNumberToObject(report, "rows_with_answer", (double)n_with);
    cJSON_AddNumberToObject(report, "answers_ignored", (double)ignored);
    cJSON_AddItemToObject(report, "upload_table", table);
    vr_strbuf cw = {0};
    cJSON *circ = circular_eval(&tsv, &ut, PRED, has_pred, &cw);
    cJSON_AddItemToObject(report, "circular_not_upstream", circ ? circ : cJSON_CreateNull());
    if (ignored || cw.n || n_with < ut.n_rows) {
        cJSON *w = cJSON_AddArrayToObject(report, "warnings");
        if (n_with < ut.n_rows) {
            vr_score_warning_add(w, "%zu of %zu rows have no answer; their prediction cell is empty (as upstream)",
                                 ut.n_rows - n_with, ut.n_rows);
        }
        if (ignored) {
            vr_score_warning_add(w, "%zu answer lines match no row's index and were ignored (as upstream)", ignored);
        }
        if (cw.n) cJSON_AddItemToArray(w, cJSON_CreateString(cw.p));
    }
    vr_strbuf_free(&cw);
    rep->json = report;
    report = NULL;
    rep->stdout_text = calloc(1, 1); /* upstream prints nothing */
    if (!rep->stdout_text) goto oom;
    goto done;
oom:
    st = vr_error_set(err, VR_ERR_NOMEM, "out of memory converting the MMBench answers");
done:
    cJSON_Delete(report);
    vr_tsv_free(&tsv);
    vr_jsonl_free(&res);
    free(ut.names);
    free(ut.cells);
    free(has_pred);
    free(keep);
    free(row_next);
    vr_score_map_free(&rows_by_key);
    vr_strbuf_free(&tmp);
    vr_strbuf_free(&xb);
    vr_strbuf_free(&jb);
    return st;
}

static int path_part_ok(const char *s) { return s && *s && !strchr(s, '/') && strcmp(s, ".") && strcmp(s, ".."); }

vr_status vr_mmbench_convert(const char *annotation_file, const char *result_dir, const char *upload_dir,
                             const char *experiment, vr_score_report *rep, vr_error *err) {
    vr_error local = {0};
    if (!err) err = &local;
    memset(rep, 0, sizeof *rep);
    if (!path_part_ok(experiment))
        return vr_error_set(err, VR_ERR_INVALID, "MMBench: give the experiment name (a file name without '/')");
    vr_strbuf a = {0}, x = {0}, t = {0};
    vr_strbuf_printf(&a, "%s/%s/merge.jsonl", result_dir, experiment);
    vr_strbuf_printf(&x, "%s/%s.xlsx", upload_dir, experiment);
    vr_strbuf_printf(&t, "%s/%s_upload_table.json", upload_dir, experiment);
    vr_status st = a.oom || x.oom || t.oom ? vr_error_set(err, VR_ERR_NOMEM, "out of memory")
                                           : convert(annotation_file, a.p, x.p, t.p, rep, err);
    vr_strbuf_free(&a);
    vr_strbuf_free(&x);
    vr_strbuf_free(&t);
    if (st != VR_OK) vr_score_report_free(rep);
    return st;
}

static vr_status score_mmbench(const char *eval_dir, const vr_score_options *o, const char *default_split,
                               vr_score_report *rep, vr_error *err) {
    vr_error local = {0};
    if (!err) err = &local;
    memset(rep, 0, sizeof *rep);
    const char *split = o && o->split ? o->split : default_split;
    const char *exp = o ? o->exp_name : NULL;
    if (!path_part_ok(exp))
        return vr_error_set(err, VR_ERR_INVALID,
                            "MMBench: give the experiment name (exp_name, no '/'): it names the answer folder and the "
                            "upload file");
    if (!path_part_ok(split)) return vr_error_set(err, VR_ERR_INVALID, "MMBench: the split must be a name without '/'");
    char *dir = vr_score_join_path(eval_dir, "eval/mmbench");
    vr_strbuf ann = {0}, ans = {0}, x = {0}, t = {0};
    if (o && o->annotation_path) vr_strbuf_append_str(&ann, o->annotation_path);
    else vr_strbuf_printf(&ann, "%s/%s.tsv", dir ? dir : "", split);
    if (o && o->answers_path) vr_strbuf_append_str(&ans, o->answers_path);
    else vr_strbuf_printf(&ans, "%s/answers/%s/%s/merge.jsonl", dir ? dir : "", split, exp);
    vr_strbuf_printf(&x, "%s/answers_upload/%s/%s.xlsx", dir ? dir : "", split, exp);
    vr_strbuf_printf(&t, "%s/answers_upload/%s/%s_upload_table.json", dir ? dir : "", split, exp);
    vr_status st = !dir || ann.oom || ans.oom || x.oom || t.oom ? vr_error_set(err, VR_ERR_NOMEM, "out of memory")
                                                               : convert(ann.p, ans.p, x.p, t.p, rep, err);
    if (st == VR_OK) cJSON_AddStringToObject(rep->json, "benchmark", strcmp(default_split, MMBENCH_SPLIT_CN) == 0 ? "mmbench_cn" : "mmbench");
    free(dir);
    vr_strbuf_free(&ann);
    vr_strbuf_free(&ans);
    vr_strbuf_free(&x);
    vr_strbuf_free(&t);
    if (st != VR_OK) vr_score_report_free(rep);
    return st;
}

vr_status vr_score_mmbench(const char *eval_dir, const vr_score_options *o, vr_score_report *rep, vr_error *err) {
    return score_mmbench(eval_dir, o, MMBENCH_SPLIT_EN, rep, err);
}

vr_status vr_score_mmbench_cn(const char *eval_dir, const vr_score_options *o, vr_score_report *rep, vr_error *err) {
    return score_mmbench(eval_dir, o, MMBENCH_SPLIT_CN, rep, err);
}
