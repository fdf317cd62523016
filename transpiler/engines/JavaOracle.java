// The Java primitives a Logpresso search relies on, for transpiler/engines/pipesearch.py: regex
// find() (java.util.regex, as the match() function), String.toLowerCase() (lower()),
// Double.parseDouble() (double()) and Double.toString() (toString of a double value).
// One request per line: OP <tab> base64(arg) [<tab> base64(arg)]; one answer line each.
import java.io.*;
import java.nio.charset.StandardCharsets;
import java.util.*;
import java.util.regex.*;

public class JavaOracle {
    public static void main(String[] args) throws IOException {
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        PrintStream out = new PrintStream(new FileOutputStream(FileDescriptor.out), true, "UTF-8");
        Map<String, Pattern> cache = new HashMap<>();
        String line;
        while ((line = in.readLine()) != null) {
            String[] f = line.split("\t", -1);
            String a = f.length > 1 ? dec(f[1]) : "";
            String b = f.length > 2 ? dec(f[2]) : "";
            try {
                switch (f[0]) {
                    case "find": {
                        Pattern p = cache.get(a);
                        if (p == null) { p = Pattern.compile(a); cache.put(a, p); }
                        out.println(p.matcher(b).find() ? "1" : "0");
                        break;
                    }
                    case "lower": out.println(enc(a.toLowerCase())); break;
                    case "double": {
                        String s = null;
                        try { s = Double.toString(Double.parseDouble(a)); } catch (NumberFormatException e) { }
                        out.println(s == null ? "-" : enc(s));
                        break;
                    }
                    case "dtoa": out.println(enc(Double.toString(Double.parseDouble(a)))); break;
                    default: out.println("E" + enc("unknown op " + f[0]));
                }
            } catch (Exception e) {
                out.println("E" + enc(e.toString()));
            }
        }
    }

    static String dec(String s) { return new String(Base64.getDecoder().decode(s), StandardCharsets.UTF_8); }
    static String enc(String s) { return Base64.getEncoder().encodeToString(s.getBytes(StandardCharsets.UTF_8)); }
}
