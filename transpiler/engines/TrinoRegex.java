// Trino's regex functions for the athena engine (transpiler/engines/athena.py): Joni, the
// Oniguruma port Trino uses by default, in its Java syntax over UTF-8 (as Trino compiles a
// pattern), searched as regexp_like searches and replaced as regexp_replace replaces (every
// match; $n, ${name}, \ escapes in the replacement). Needs the joni and jcodings jars
// (Debian: libjruby-joni-java).
// One request per line, fields base64: "find" pattern text, or "replace" pattern text
// replacement; answer 1 / 0 (find), the base64 result (replace), or E<base64(error)>.
import java.io.*;
import java.nio.charset.StandardCharsets;
import java.util.*;
import org.jcodings.specific.UTF8Encoding;
import org.joni.*;

public class TrinoRegex {
    private static final Map<String, Regex> CACHE = new HashMap<>();

    public static void main(String[] args) throws IOException {
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        PrintStream out = new PrintStream(new FileOutputStream(FileDescriptor.out), true, "UTF-8");
        String line;
        while ((line = in.readLine()) != null) {
            String[] f = line.split("\t", -1);
            try {
                Regex regex = compile(f[1]);
                byte[] text = Base64.getDecoder().decode(f[2]);
                if (f[0].equals("find")) {
                    Matcher m = regex.matcher(text, 0, text.length);
                    out.println(m.search(0, text.length, Option.DEFAULT) != -1 ? "1" : "0");
                } else {
                    byte[] replacement = Base64.getDecoder().decode(f[3]);
                    out.println(Base64.getEncoder().encodeToString(replace(regex, text, replacement)));
                }
            } catch (Exception e) {
                out.println("E" + Base64.getEncoder().encodeToString(String.valueOf(e).getBytes(StandardCharsets.UTF_8)));
            }
        }
    }

    static Regex compile(String encoded) {
        Regex regex = CACHE.get(encoded);
        if (regex == null) {
            byte[] p = Base64.getDecoder().decode(encoded);
            regex = new Regex(p, 0, p.length, Option.DEFAULT, UTF8Encoding.INSTANCE, Syntax.Java);
            CACHE.put(encoded, regex);
        }
        return regex;
    }

    // Every match replaced, left to right; after an empty match the search goes on one code point later.
    static byte[] replace(Regex regex, byte[] text, byte[] replacement) {
        Matcher m = regex.matcher(text, 0, text.length);
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        int lastEnd = 0, nextStart = 0;
        while (nextStart <= text.length && m.search(nextStart, text.length, Option.DEFAULT) != -1) {
            int begin = m.getBegin(), end = m.getEnd();
            nextStart = end > begin ? end : end + (begin < text.length ? codePointLength(text[begin]) : 1);
            out.write(text, lastEnd, begin - lastEnd);
            lastEnd = end;
            appendReplacement(out, regex, m.getEagerRegion(), text, replacement);
        }
        out.write(text, lastEnd, text.length - lastEnd);
        return out.toByteArray();
    }

    static int codePointLength(byte lead) {
        int b = lead & 0xff;
        return b < 0x80 ? 1 : b < 0xe0 ? 2 : b < 0xf0 ? 3 : 4;
    }

    static void appendReplacement(ByteArrayOutputStream out, Regex regex, Region region, byte[] text, byte[] r) {
        int i = 0;
        while (i < r.length) {
            byte b = r[i];
            if (b == '$') {
                i++;
                if (i == r.length) throw new IllegalArgumentException("Illegal replacement sequence");
                int group;
                if (r[i] == '{') {
                    int start = ++i;
                    while (i < r.length && r[i] != '}') i++;
                    group = regex.nameToBackrefNumber(r, start, i, region);
                    i++;
                } else {
                    group = r[i] - '0';
                    if (group < 0 || group > 9) throw new IllegalArgumentException("Illegal replacement sequence");
                    if (region.numRegs <= group) throw new IllegalArgumentException("unknown group " + group);
                    i++;
                    while (i < r.length && r[i] >= '0' && r[i] <= '9' && group * 10 + (r[i] - '0') < region.numRegs) {
                        group = group * 10 + (r[i] - '0');
                        i++;
                    }
                }
                if (region.beg[group] != -1 && region.end[group] != -1) {
                    out.write(text, region.beg[group], region.end[group] - region.beg[group]);
                }
            } else {
                if (b == '\\') {
                    i++;
                    if (i == r.length) throw new IllegalArgumentException("Illegal replacement sequence");
                    b = r[i];
                }
                out.write(b);
                i++;
            }
        }
    }
}
