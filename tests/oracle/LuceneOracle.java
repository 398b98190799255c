/*
 * The test oracle: real Apache Lucene 8 (the major version Elasticsearch 7
 * embeds), configured the way Elasticsearch's query_string reads a query over
 * the index template elastic-recheck installs. tests/test_lucene_oracle.py
 * compiles and runs it and compares its answers with the embedded engine's.
 *
 * It lives in Lucene's classic parser package because the parser's
 * handleBareFuzzy, which Elasticsearch overrides, is package-private there
 * (Elasticsearch uses the same trick, its XQueryParser).
 *
 * Input on stdin, one record a line, fields separated by tabs, each field
 * escaped (backslash, tab, newline and return as \\ \t \n \r):
 *   NOW <epoch millis>                 the moment date math calls "now"
 *   FIELD <name> <text|date>           a mapped field (text fields also get
 *                                      a .keyword sub-field, as the template does)
 *   DOC <id>                           starts a document
 *   V <field> <value>                  a value (repeat the field for a list)
 *   TS <epoch millis>                  the document's @timestamp
 *   END                                ends the document
 *   Q <query id> <query>               a query, answered on stdout as
 *                                      "<id>\tOK\t<doc ids separated by spaces>"
 *                                      or "<id>\tERR\t<one-line reason>"
 * The index is built when the first query arrives.
 */
package org.apache.lucene.queryparser.classic;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.time.DayOfWeek;
import java.time.Instant;
import java.time.LocalDate;
import java.time.LocalDateTime;
import java.time.ZoneOffset;
import java.time.ZonedDateTime;
import java.time.temporal.ChronoUnit;
import java.time.temporal.TemporalAdjusters;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.apache.lucene.analysis.Analyzer;
import org.apache.lucene.analysis.LowerCaseFilter;
import org.apache.lucene.analysis.TokenStream;
import org.apache.lucene.analysis.standard.StandardTokenizer;
import org.apache.lucene.document.Document;
import org.apache.lucene.document.Field;
import org.apache.lucene.document.LongPoint;
import org.apache.lucene.document.NumericDocValuesField;
import org.apache.lucene.document.SortedSetDocValuesField;
import org.apache.lucene.document.StoredField;
import org.apache.lucene.document.StringField;
import org.apache.lucene.document.TextField;
import org.apache.lucene.index.DirectoryReader;
import org.apache.lucene.index.IndexWriter;
import org.apache.lucene.index.IndexWriterConfig;
import org.apache.lucene.index.Term;
import org.apache.lucene.search.BooleanClause;
import org.apache.lucene.search.BooleanQuery;
import org.apache.lucene.search.DocValuesFieldExistsQuery;
import org.apache.lucene.search.FuzzyQuery;
import org.apache.lucene.search.IndexSearcher;
import org.apache.lucene.search.MatchAllDocsQuery;
import org.apache.lucene.search.MatchNoDocsQuery;
import org.apache.lucene.search.NormsFieldExistsQuery;
import org.apache.lucene.search.PrefixQuery;
import org.apache.lucene.search.Query;
import org.apache.lucene.search.RegexpQuery;
import org.apache.lucene.search.ScoreDoc;
import org.apache.lucene.search.TermQuery;
import org.apache.lucene.search.TermRangeQuery;
import org.apache.lucene.search.WildcardQuery;
import org.apache.lucene.store.ByteBuffersDirectory;
import org.apache.lucene.util.BytesRef;
import org.apache.lucene.util.automaton.RegExp;

public final class LuceneOracle {
    static final String ID = "_oracle_id";
    static final String TIMESTAMP = "@timestamp";
    static final String KEYWORD = ".keyword";
    static final int IGNORE_ABOVE = 256;        // the template's keyword sub-fields
    static final int MAX_DETERMINIZED = 10000;  // Elasticsearch's default
    static final int MAX_REGEX_LENGTH = 1000;   // index.max_regex_length
    static final int FUZZY_MAX_EXPANSIONS = 50;

    /** Elasticsearch's standard analyzer with no stop words, and a text
     * field's position_increment_gap of 100 between the values of a list. */
    static final class EsStandardAnalyzer extends Analyzer {
        @Override
        protected TokenStreamComponents createComponents(String field) {
            StandardTokenizer tokenizer = new StandardTokenizer();
            tokenizer.setMaxTokenLength(255);
            return new TokenStreamComponents(tokenizer, new LowerCaseFilter(tokenizer));
        }

        @Override
        protected TokenStream normalize(String field, TokenStream in) {
            return new LowerCaseFilter(in);
        }

        @Override
        public int getPositionIncrementGap(String field) {
            return 100;
        }
    }

    /** What a field name resolves to in the mapping. */
    enum Kind { TEXT, KEYWORD, DATE }

    static final class Mapping {
        final Map<String, Kind> fields = new LinkedHashMap<>();

        Kind kind(String name) {
            Kind kind = fields.get(name);
            if (kind != null) {
                return kind;
            }
            if (name.endsWith(KEYWORD) && fields.get(name.substring(0, name.length() - KEYWORD.length())) == Kind.TEXT) {
                return Kind.KEYWORD;
            }
            return null;
        }

        /** Every mapped name a simple pattern (only * wildcards) matches, sub-fields included. */
        List<String> matching(String pattern) {
            List<String> out = new ArrayList<>();
            for (Map.Entry<String, Kind> e : fields.entrySet()) {
                if (simpleMatch(pattern, e.getKey())) {
                    out.add(e.getKey());
                }
                if (e.getValue() == Kind.TEXT && simpleMatch(pattern, e.getKey() + KEYWORD)) {
                    out.add(e.getKey() + KEYWORD);
                }
            }
            return out;
        }
    }

    static boolean simpleMatch(String pattern, String s) {
        return s.matches(Pattern.quote(pattern).replace("*", "\\E.*\\Q"));
    }

    /** Elasticsearch's QueryStringQueryParser, reduced to one index whose mapping is known. */
    static final class EsQueryParser extends QueryParser {
        final Mapping mapping;
        final long now;

        EsQueryParser(Mapping mapping, Analyzer analyzer, long now) {
            super("message", analyzer);
            this.mapping = mapping;
            this.now = now;
            setDefaultOperator(Operator.OR);
            setAllowLeadingWildcard(true);
            setAutoGeneratePhraseQueries(false);
            setEnablePositionIncrements(true);
            setSplitOnWhitespace(false);
            setPhraseSlop(0);
            setFuzzyPrefixLength(0);
        }

        @Override
        public Query parse(String query) throws ParseException {
            if (query.trim().isEmpty()) {
                return new MatchNoDocsQuery();
            }
            return super.parse(query);
        }

        Query exists(String fieldPattern) {
            List<String> names = mapping.matching(fieldPattern);
            if (names.isEmpty()) {
                return new MatchNoDocsQuery();
            }
            BooleanQuery.Builder any = new BooleanQuery.Builder();
            for (String name : names) {
                Kind kind = mapping.kind(name);
                any.add(kind == Kind.TEXT ? new NormsFieldExistsQuery(name) : new DocValuesFieldExistsQuery(name),
                        BooleanClause.Occur.SHOULD);
            }
            return any.build();
        }

        void noFieldPattern(String field) throws ParseException {
            if (field.indexOf('*') >= 0 || field.indexOf('?') >= 0) {
                throw new ParseException("ORACLE-UNSUPPORTED: field-name patterns are not modelled: " + field);
            }
        }

        @Override
        protected Query getFieldQuery(String field, String queryText, boolean quoted) throws ParseException {
            if ("_exists_".equals(field)) {
                return exists(queryText);
            }
            if (quoted) {
                return getFieldQuery(field, queryText, getPhraseSlop());
            }
            if (queryText.length() > 1) {
                if (queryText.charAt(0) == '>') {
                    if (queryText.length() > 2 && queryText.charAt(1) == '=') {
                        return getRangeQuery(field, queryText.substring(2), null, true, true);
                    }
                    return getRangeQuery(field, queryText.substring(1), null, false, true);
                } else if (queryText.charAt(0) == '<') {
                    if (queryText.length() > 2 && queryText.charAt(1) == '=') {
                        return getRangeQuery(field, null, queryText.substring(2), true, true);
                    }
                    return getRangeQuery(field, null, queryText.substring(1), true, false);
                }
            }
            noFieldPattern(field);
            Kind kind = mapping.kind(field);
            if (kind == null) {
                return new MatchNoDocsQuery();
            }
            if (kind == Kind.DATE) {
                return dateRange(queryText, queryText, true, true);
            }
            if (kind == Kind.KEYWORD) {
                return new TermQuery(new Term(field, queryText));
            }
            return createBooleanQuery(field, queryText, BooleanClause.Occur.SHOULD);
        }

        @Override
        protected Query getFieldQuery(String field, String queryText, int slop) throws ParseException {
            if ("_exists_".equals(field)) {
                return exists(queryText);
            }
            noFieldPattern(field);
            Kind kind = mapping.kind(field);
            if (kind == null) {
                return new MatchNoDocsQuery();
            }
            if (kind == Kind.DATE) {
                return dateRange(queryText, queryText, true, true);
            }
            if (kind == Kind.KEYWORD) {
                return new TermQuery(new Term(field, queryText));
            }
            return createPhraseQuery(field, queryText, slop);
        }

        @Override
        protected Query getRangeQuery(String field, String part1, String part2, boolean startInclusive,
                                      boolean endInclusive) throws ParseException {
            if ("*".equals(part1)) {
                part1 = null;
            }
            if ("*".equals(part2)) {
                part2 = null;
            }
            noFieldPattern(field);
            Kind kind = mapping.kind(field);
            if (kind == null) {
                return new MatchNoDocsQuery();
            }
            if (kind == Kind.DATE) {
                return dateRange(part1, part2, startInclusive, endInclusive);  // a date field has no normalizer
            }
            if (kind == Kind.TEXT) {
                part1 = part1 == null ? null : normalize(field, part1);
                part2 = part2 == null ? null : normalize(field, part2);
            }
            return TermRangeQuery.newStringRange(field, part1, part2, startInclusive, endInclusive);
        }

        String normalize(String field, String text) {
            return getAnalyzer().normalize(field, text).utf8ToString();
        }

        @Override
        Query handleBareFuzzy(String field, Token fuzzySlop, String termImage) throws ParseException {
            int edits;
            if (fuzzySlop.image.length() == 1) {
                int length = termImage.codePointCount(0, termImage.length());
                edits = length < 3 ? 0 : length < 6 ? 1 : 2;  // Fuzziness.AUTO
            } else {
                edits = Math.min(2, (int) Float.parseFloat(fuzzySlop.image.substring(1)));
            }
            return getFuzzyQuery(field, termImage, edits);
        }

        @Override
        protected Query getFuzzyQuery(String field, String termStr, float minSimilarity) throws ParseException {
            noFieldPattern(field);
            Kind kind = mapping.kind(field);
            if (kind == null) {
                return new MatchNoDocsQuery();
            }
            if (kind == Kind.DATE) {
                throw new ParseException("Can only use fuzzy queries on keyword and text fields");
            }
            String term = kind == Kind.TEXT ? normalize(field, termStr) : termStr;
            return new FuzzyQuery(new Term(field, term), (int) minSimilarity, 0, FUZZY_MAX_EXPANSIONS, true);
        }

        @Override
        protected Query getPrefixQuery(String field, String termStr) throws ParseException {
            noFieldPattern(field);
            Kind kind = mapping.kind(field);
            if (kind == null) {
                return new MatchNoDocsQuery();
            }
            if (kind == Kind.DATE) {
                throw new ParseException("Can only use prefix queries on keyword and text fields");
            }
            return new PrefixQuery(new Term(field, kind == Kind.TEXT ? normalize(field, termStr) : termStr));
        }

        static final Pattern WILDCARD = Pattern.compile("(\\\\.)|([?*]+)");

        /** Elasticsearch lower-cases a wildcard pattern's literal runs only,
         * leaving wildcards and escaped characters as written. */
        String normalizeWildcard(String field, String value) {
            Matcher m = WILDCARD.matcher(value);
            StringBuilder sb = new StringBuilder();
            int last = 0;
            while (m.find()) {
                if (m.start() > last) {
                    sb.append(normalize(field, value.substring(last, m.start())));
                }
                sb.append(m.group());
                last = m.end();
            }
            if (last < value.length()) {
                sb.append(normalize(field, value.substring(last)));
            }
            return sb.toString();
        }

        @Override
        protected Query getWildcardQuery(String field, String termStr) throws ParseException {
            if ("*".equals(termStr)) {
                if ("*".equals(field)) {
                    return new MatchAllDocsQuery();
                }
                return exists(field);
            }
            noFieldPattern(field);
            Kind kind = mapping.kind(field);
            if (kind == null) {
                return new MatchNoDocsQuery();
            }
            if (kind == Kind.DATE) {
                throw new ParseException("Can only use wildcard queries on keyword and text fields");
            }
            String pattern = kind == Kind.TEXT ? normalizeWildcard(field, termStr) : termStr;
            return new WildcardQuery(new Term(field, pattern), MAX_DETERMINIZED);
        }

        @Override
        protected Query getRegexpQuery(String field, String termStr) throws ParseException {
            if (termStr.length() > MAX_REGEX_LENGTH) {
                throw new ParseException("The length of regex [" + termStr.length() + "] has exceeded the allowed maximum");
            }
            noFieldPattern(field);
            Kind kind = mapping.kind(field);
            if (kind == null) {
                return new MatchNoDocsQuery();
            }
            if (kind == Kind.DATE) {
                throw new ParseException("Can only use regexp queries on keyword and text fields");
            }
            return new RegexpQuery(new Term(field, termStr), RegExp.ALL, MAX_DETERMINIZED);
        }

        @Override
        protected Query getBooleanQuery(List<BooleanClause> clauses) throws ParseException {
            Query q = super.getBooleanQuery(clauses);
            if (q == null) {
                return null;
            }
            return fixNegativeQueryIfNeeded(q);
        }

        static Query fixNegativeQueryIfNeeded(Query q) {
            if (!(q instanceof BooleanQuery)) {
                return q;
            }
            BooleanQuery bq = (BooleanQuery) q;
            if (bq.clauses().isEmpty()) {
                return q;
            }
            for (BooleanClause clause : bq.clauses()) {
                if (clause.getOccur() != BooleanClause.Occur.MUST_NOT) {
                    return q;
                }
            }
            BooleanQuery.Builder builder = new BooleanQuery.Builder();
            for (BooleanClause clause : bq.clauses()) {
                builder.add(clause);
            }
            builder.add(new MatchAllDocsQuery(), BooleanClause.Occur.FILTER);
            return builder.build();
        }

        Query dateRange(String low, String high, boolean includeLow, boolean includeHigh) throws ParseException {
            long l = Long.MIN_VALUE;
            long u = Long.MAX_VALUE;
            if (low != null) {
                l = DateMath.parse(low, !includeLow, now);
                if (!includeLow) {
                    if (l == Long.MAX_VALUE) {
                        return new MatchNoDocsQuery();
                    }
                    ++l;
                }
            }
            if (high != null) {
                u = DateMath.parse(high, includeHigh, now);
                if (!includeHigh) {
                    if (u == Long.MIN_VALUE) {
                        return new MatchNoDocsQuery();
                    }
                    --u;
                }
            }
            return LongPoint.newRangeQuery(TIMESTAMP, l, u);
        }
    }

    /** Elasticsearch's date math over the date field format
     * strict_date_optional_time||epoch_millis, in UTC. */
    static final class DateMath {
        static final Pattern DATE = Pattern.compile(
            "(\\d{4,9})(?:-(\\d{2})(?:-(\\d{2})(?:T(\\d{2})(?::(\\d{2})(?::(\\d{2})(?:[.,](\\d{1,9}))?)?)?"
            + "(Z|[+-]\\d{2}(?::?\\d{2})?)?)?)?)?");
        static final Pattern EPOCH = Pattern.compile("-?\\d+(?:\\.\\d{1,6})?");

        static long parse(String text, boolean roundUp, long now) throws ParseException {
            ZonedDateTime time;
            String math;
            if (text.startsWith("now")) {
                time = Instant.ofEpochMilli(now).atZone(ZoneOffset.UTC);
                math = text.substring(3);
            } else {
                int index = text.indexOf("||");
                if (index == -1) {
                    return date(text, roundUp).toInstant().toEpochMilli();
                }
                time = date(text.substring(0, index), false);
                math = text.substring(index + 2);
            }
            return math(math, time, roundUp).toInstant().toEpochMilli();
        }

        static ZonedDateTime date(String text, boolean roundUp) throws ParseException {
            Matcher m = DATE.matcher(text);
            if (m.matches()) {
                try {
                    int year = Integer.parseInt(m.group(1));
                    int month = m.group(2) != null ? Integer.parseInt(m.group(2)) : roundUp ? 12 : 1;
                    LocalDate first = LocalDate.of(year, month, 1);
                    int day = m.group(3) != null ? Integer.parseInt(m.group(3)) : roundUp ? first.lengthOfMonth() : 1;
                    int hour = m.group(4) != null ? Integer.parseInt(m.group(4)) : roundUp ? 23 : 0;
                    int minute = m.group(5) != null ? Integer.parseInt(m.group(5)) : roundUp ? 59 : 0;
                    int second = m.group(6) != null ? Integer.parseInt(m.group(6)) : roundUp ? 59 : 0;
                    int nanos;
                    if (m.group(7) != null) {
                        String fraction = (m.group(7) + "000000000").substring(0, 9);
                        nanos = Integer.parseInt(fraction);
                    } else {
                        nanos = roundUp ? 999_999_999 : 0;
                    }
                    ZoneOffset zone = ZoneOffset.UTC;
                    if (m.group(8) != null && !m.group(8).equals("Z")) {
                        String z = m.group(8);
                        zone = ZoneOffset.of(z.length() == 5 && z.indexOf(':') < 0
                            ? z.substring(0, 3) + ":" + z.substring(3) : z);
                    }
                    LocalDateTime local = LocalDateTime.of(year, month, day, hour, minute, second, nanos);
                    return local.atZone(zone);
                } catch (RuntimeException e) {
                    throw new ParseException("failed to parse date field [" + text + "]: " + e.getMessage());
                }
            }
            if (EPOCH.matcher(text).matches()) {
                double millis = Double.parseDouble(text);
                return Instant.ofEpochMilli((long) millis).atZone(ZoneOffset.UTC);
            }
            throw new ParseException("failed to parse date field [" + text + "]");
        }

        static ZonedDateTime math(String math, ZonedDateTime time, boolean roundUp) throws ParseException {
            int i = 0;
            while (i < math.length()) {
                char c = math.charAt(i++);
                boolean round;
                int sign = 1;
                if (c == '/') {
                    round = true;
                } else if (c == '+' || c == '-') {
                    round = false;
                    sign = c == '+' ? 1 : -1;
                } else {
                    throw new ParseException("operator not supported for date math [" + math + "]");
                }
                if (i >= math.length()) {
                    throw new ParseException("truncated date math [" + math + "]");
                }
                int num = 1;
                if (Character.isDigit(math.charAt(i))) {
                    int from = i;
                    while (i < math.length() && Character.isDigit(math.charAt(i))) {
                        i++;
                    }
                    if (i >= math.length()) {
                        throw new ParseException("truncated date math [" + math + "]");
                    }
                    try {
                        num = Integer.parseInt(math.substring(from, i));
                    } catch (NumberFormatException e) {
                        throw new ParseException("date math number out of range [" + math + "]");
                    }
                }
                if (round && num != 1) {
                    throw new ParseException("rounding `/` can only be used on single unit types [" + math + "]");
                }
                char unit = math.charAt(i++);
                ChronoUnit chrono;
                switch (unit) {
                    case 'y': chrono = ChronoUnit.YEARS; break;
                    case 'M': chrono = ChronoUnit.MONTHS; break;
                    case 'w': chrono = ChronoUnit.WEEKS; break;
                    case 'd': chrono = ChronoUnit.DAYS; break;
                    case 'h': case 'H': chrono = ChronoUnit.HOURS; break;
                    case 'm': chrono = ChronoUnit.MINUTES; break;
                    case 's': chrono = ChronoUnit.SECONDS; break;
                    default: throw new ParseException("unit [" + unit + "] not supported for date math [" + math + "]");
                }
                try {
                    if (round) {
                        switch (unit) {
                            case 'y': time = time.withDayOfYear(1).truncatedTo(ChronoUnit.DAYS); break;
                            case 'M': time = time.withDayOfMonth(1).truncatedTo(ChronoUnit.DAYS); break;
                            case 'w': time = time.with(TemporalAdjusters.previousOrSame(DayOfWeek.MONDAY))
                                          .truncatedTo(ChronoUnit.DAYS); break;
                            default: time = time.truncatedTo(chrono);
                        }
                        if (roundUp) {
                            time = time.plus(1, chrono).minus(1, ChronoUnit.MILLIS);
                        }
                    } else {
                        time = time.plus((long) sign * num, chrono);
                    }
                } catch (RuntimeException e) {
                    throw new ParseException("date math out of range [" + math + "]");
                }
            }
            return time;
        }
    }

    static String unescape(String s) {
        StringBuilder out = new StringBuilder(s.length());
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == '\\' && i + 1 < s.length()) {
                char n = s.charAt(++i);
                out.append(n == 't' ? '\t' : n == 'n' ? '\n' : n == 'r' ? '\r' : n);
            } else {
                out.append(c);
            }
        }
        return out.toString();
    }

    static String oneLine(String s) {
        return s == null ? "" : s.replaceAll("\\s+", " ").trim();
    }

    public static void main(String[] args) throws Exception {
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        PrintStream out = new PrintStream(System.out, false, "UTF-8");
        Analyzer analyzer = new EsStandardAnalyzer();
        Mapping mapping = new Mapping();
        mapping.fields.put(TIMESTAMP, Kind.DATE);
        ByteBuffersDirectory directory = new ByteBuffersDirectory();
        IndexWriter writer = new IndexWriter(directory, new IndexWriterConfig(analyzer));
        IndexSearcher searcher = null;
        long now = System.currentTimeMillis();
        Document doc = null;
        String line;
        while ((line = in.readLine()) != null) {
            if (line.isEmpty()) {
                continue;
            }
            String[] parts = line.split("\t", -1);
            for (int i = 0; i < parts.length; i++) {
                parts[i] = unescape(parts[i]);
            }
            switch (parts[0]) {
                case "NOW":
                    now = Long.parseLong(parts[1]);
                    break;
                case "FIELD":
                    mapping.fields.put(parts[1], parts[2].equals("date") ? Kind.DATE : Kind.TEXT);
                    break;
                case "DOC":
                    doc = new Document();
                    doc.add(new StringField(ID, parts[1], Field.Store.YES));
                    break;
                case "V": {
                    String field = parts[1];
                    String value = parts[2];
                    doc.add(new TextField(field, value, Field.Store.NO));
                    if (value.length() <= IGNORE_ABOVE) {
                        doc.add(new StringField(field + KEYWORD, value, Field.Store.NO));
                        doc.add(new SortedSetDocValuesField(field + KEYWORD, new BytesRef(value)));
                    }
                    break;
                }
                case "TS": {
                    long millis = Long.parseLong(parts[1]);
                    doc.add(new LongPoint(TIMESTAMP, millis));
                    doc.add(new NumericDocValuesField(TIMESTAMP, millis));
                    break;
                }
                case "END":
                    writer.addDocument(doc);
                    doc = null;
                    break;
                case "Q": {
                    if (searcher == null) {
                        writer.commit();
                        writer.close();
                        searcher = new IndexSearcher(DirectoryReader.open(directory));
                    }
                    String answer;
                    try {
                        EsQueryParser parser = new EsQueryParser(mapping, analyzer, now);
                        Query query = parser.parse(parts[2]);
                        TreeSet<String> ids = new TreeSet<>();
                        if (query != null) {
                            for (ScoreDoc hit : searcher.search(query, Math.max(1, searcher.getIndexReader().maxDoc())).scoreDocs) {
                                ids.add(searcher.doc(hit.doc).get(ID));
                            }
                        }
                        answer = "OK\t" + String.join(" ", ids);
                    } catch (ParseException | RuntimeException | StackOverflowError e) {
                        answer = "ERR\t" + e.getClass().getSimpleName() + ": " + oneLine(e.getMessage());
                    }
                    out.print(parts[1] + "\t" + answer + "\n");
                    break;
                }
                default:
                    throw new IllegalArgumentException("unknown record: " + parts[0]);
            }
        }
        out.flush();
    }
}
