// Trino's regex engine for the tests: Joni (the Oniguruma port) in its Java syntax over UTF-8,
// as io.trino.operator.scalar.JoniRegexpCasts compiles patterns, searched as regexp_like does
// (JoniRegexpFunctions.regexpLike). Needs the joni and jcodings jars (Debian: libjruby-joni-java).
// One request per line: base64(pattern) <tab> base64(text); answer 1, 0 or E<base64(error)>.
import java.io.*;
import java.nio.charset.StandardCharsets;
import java.util.*;
import org.jcodings.specific.UTF8Encoding;
import org.joni.*;

public class JoniOracle {
    public static void main(String[] args) throws IOException {
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        PrintStream out = new PrintStream(new FileOutputStream(FileDescriptor.out), true, "UTF-8");
        Map<String, Regex> cache = new HashMap<>();
        String line;
        while ((line = in.readLine()) != null) {
            String[] f = line.split("\t", -1);
            try {
                byte[] pattern = Base64.getDecoder().decode(f[0]);
                byte[] text = Base64.getDecoder().decode(f[1]);
                Regex regex = cache.get(f[0]);
                if (regex == null) {
                    regex = new Regex(pattern, 0, pattern.length, Option.DEFAULT, UTF8Encoding.INSTANCE, Syntax.Java);
                    cache.put(f[0], regex);
                }
                Matcher m = regex.matcher(text, 0, text.length);
                out.println(m.search(0, text.length, Option.DEFAULT) != -1 ? "1" : "0");
            } catch (Exception e) {
                out.println("E" + Base64.getEncoder().encodeToString(String.valueOf(e).getBytes(StandardCharsets.UTF_8)));
            }
        }
    }
}
