// A Clever grade passback partner in Java 17, standard library only: the JDK's
// com.sun.net.httpserver for its pages and java.net.http.HttpClient for its calls to
// Clever. Proves the contract suite against a JVM stack (HttpServer writes header names as
// "Content-type", HttpClient offers an HTTP/2 upgrade on plain http, BigDecimal scores).
//
//   java Partner.java --sim http://127.0.0.1:8080 --port 0 --client-id ID --client-secret S
//
// Options (or env SIM_URL, PORT, CLIENT_ID, CLIENT_SECRET). Prints
// "listening on http://127.0.0.1:PORT". BUG=name plants one mistake (see BUGS); unset,
// the partner is correct.

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.math.BigDecimal;
import java.math.RoundingMode;
import java.net.InetSocketAddress;
import java.net.URI;
import java.net.URLDecoder;
import java.net.URLEncoder;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.StringJoiner;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executors;

public class Partner {
    static final Set<String> BUGS = Set.of(
        "numeric_ids",          // ids are JSON numbers (a long primary key)
        "missing_type",         // no "type" on assignments
        "no_auth_check",        // serves the list to anybody
        "ignores_state",        // always lands on /home
        "query_split_decoded",  // splits URI.getQuery() (already decoded): '+' stays, '&' in ids breaks
        "keeps_prefix",         // redirects to /assignments/assignment%3A{id}
        "crash_on_bad_code",    // no error handling when the code exchange fails (500)
        "secret_in_auth_param", // also sends ?auth=client_id:client_secret in the token URL
        "nonce_named_secret",   // not a mistake: ?secret=<a fresh nonce> in the token URL, not the secret
        "open_redirect",        // redirects to a URL found in state
        "reflects_id",          // echoes an unknown id unescaped in HTML
        "token_scheme",         // Authorization: Token <token>
        "percent_0_100",        // percentage 0-100
        "percent_string",       // percentage as a string (String.format)
        "wrong_user",           // grades the newest login, not the completing student
        "no_retry_5xx",         // gives up on a 5xx
        "ignores_retry_after",  // retries a 429 after its own short pause
        "retries_400");         // retries 4xx answers as if they were transient

    static String sim, clientId, clientSecret, bug, redirectUri;
    static final HttpClient HTTP = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
    static final Map<String, Map<String, Object>> SESSIONS = new ConcurrentHashMap<>();
    static final Map<String, String> DISTRICT_TOKENS = new ConcurrentHashMap<>();
    static volatile String lastLogin;
    static final SecureRandom RANDOM = new SecureRandom();

    record Assignment(String id, String name, String description, int points) {}
    static final List<Assignment> CATALOG = List.of(
        new Assignment("4711", "Photosynthesis Quiz", "Light and chlorophyll.", 0),
        new Assignment("lab42", "Density Lab", null, 30),
        new Assignment("essay7", "Persuasive Essay", "Claims & evidence.", 0));

    static String option(String[] args, String flag, String env, String fallback) {
        for (int i = 0; i + 1 < args.length; i++) if (args[i].equals(flag)) return args[i + 1];
        String v = System.getenv(env);
        return v != null ? v : fallback;
    }

    public static void main(String[] args) throws IOException {
        sim = option(args, "--sim", "SIM_URL", "http://127.0.0.1:8080").replaceAll("/+$", "");
        int port = Integer.parseInt(option(args, "--port", "PORT", "5004"));
        clientId = option(args, "--client-id", "CLIENT_ID", "");
        clientSecret = option(args, "--client-secret", "CLIENT_SECRET", "");
        bug = System.getenv().getOrDefault("BUG", "");
        if (!bug.isEmpty() && !BUGS.contains(bug)) {
            System.err.println("unknown BUG=" + bug + "; known: " + BUGS);
            System.exit(2);
        }
        if (clientId.isEmpty() || clientSecret.isEmpty()) {
            System.err.println("pass --client-id and --client-secret");
            System.exit(2);
        }
        HttpServer server = HttpServer.create(new InetSocketAddress("127.0.0.1", port), 64);
        server.createContext("/", Partner::handle);
        server.setExecutor(Executors.newCachedThreadPool());
        server.start();
        int bound = server.getAddress().getPort();
        redirectUri = "http://127.0.0.1:" + bound + "/clever/callback";
        System.out.println("listening on http://127.0.0.1:" + bound);
        System.out.flush();
    }

    // --- routing ------------------------------------------------------------------------

    static void handle(HttpExchange ex) throws IOException {
        try {
            String method = ex.getRequestMethod();
            String path = ex.getRequestURI().getRawPath();
            if (method.equals("GET") && path.equals("/clever/assignments")) assignments(ex);
            else if (method.equals("GET") && path.equals("/clever/callback")) callback(ex);
            else if (method.equals("GET") && path.startsWith("/assignments/")) assignmentPage(ex, path.substring(13));
            else if (method.equals("POST") && path.equals("/test-hooks/complete")) complete(ex);
            else if (method.equals("GET") && path.equals("/home")) home(ex);
            else if (method.equals("GET") && path.equals("/")) page(ex, 200, "Welcome", "Log in with Clever from Schoology.");
            else page(ex, 404, "Not found", "No such page.");
        } catch (Exception e) {
            e.printStackTrace();
            send(ex, 500, "text/plain", "Internal Server Error");
        } finally {
            ex.close();
        }
    }

    static void send(HttpExchange ex, int status, String type, String body) throws IOException {
        byte[] bytes = body.getBytes(StandardCharsets.UTF_8);
        ex.getResponseHeaders().set("Content-Type", type);
        ex.sendResponseHeaders(status, bytes.length == 0 ? -1 : bytes.length);
        try (OutputStream out = ex.getResponseBody()) { out.write(bytes); }
    }

    static String esc(String s) {
        StringBuilder b = new StringBuilder();
        for (char c : s.toCharArray()) {
            switch (c) {
                case '<' -> b.append("&lt;");
                case '>' -> b.append("&gt;");
                case '&' -> b.append("&amp;");
                case '"' -> b.append("&quot;");
                case '\'' -> b.append("&#39;");
                default -> b.append(c);
            }
        }
        return b.toString();
    }

    static void page(HttpExchange ex, int status, String title, String text) throws IOException {
        send(ex, status, "text/html; charset=utf-8", "<!DOCTYPE html><html><head><title>" + esc(title)
            + "</title></head><body><h1>" + esc(title) + "</h1><p>" + esc(text) + "</p></body></html>");
    }

    static void redirect(HttpExchange ex, String location, String cookie) throws IOException {
        ex.getResponseHeaders().set("Location", location);
        if (cookie != null) ex.getResponseHeaders().add("Set-Cookie", cookie);
        ex.sendResponseHeaders(302, -1);
    }

    static Map<String, String> query(HttpExchange ex) {
        Map<String, String> out = new LinkedHashMap<>();
        if (bug.equals("query_split_decoded")) {   // URI.getQuery() has already decoded %XX (not '+')
            String q = ex.getRequestURI().getQuery();
            if (q == null) return out;
            for (String pair : q.split("&")) {
                int i = pair.indexOf('=');
                if (i > 0) out.putIfAbsent(pair.substring(0, i), pair.substring(i + 1));
            }
            return out;
        }
        String raw = ex.getRequestURI().getRawQuery();
        if (raw == null) return out;
        for (String pair : raw.split("&")) {
            int i = pair.indexOf('=');
            String k = i < 0 ? pair : pair.substring(0, i), v = i < 0 ? "" : pair.substring(i + 1);
            try {
                out.putIfAbsent(URLDecoder.decode(k, StandardCharsets.UTF_8), URLDecoder.decode(v, StandardCharsets.UTF_8));
            } catch (IllegalArgumentException malformed) { /* skip a malformed pair */ }
        }
        return out;
    }

    static Map<String, Object> session(HttpExchange ex) {
        String cookies = ex.getRequestHeaders().getFirst("Cookie");
        if (cookies == null) return null;
        for (String c : cookies.split(";")) {
            String t = c.trim();
            if (t.startsWith("jsid=")) return SESSIONS.get(t.substring(5));
        }
        return null;
    }

    // --- Clever ---------------------------------------------------------------------------

    static String basic() {
        return "Basic " + Base64.getEncoder().encodeToString((clientId + ":" + clientSecret).getBytes(StandardCharsets.UTF_8));
    }

    static HttpResponse<String> call(HttpRequest.Builder b) throws IOException, InterruptedException {
        return HTTP.send(b.timeout(Duration.ofSeconds(5)).build(), HttpResponse.BodyHandlers.ofString());
    }

    @SuppressWarnings("unchecked")
    static Map<String, Object> me(String token) throws IOException, InterruptedException {
        HttpResponse<String> r = call(HttpRequest.newBuilder(URI.create(sim + "/v3.0/me")).header("Authorization", "Bearer " + token));
        if (r.statusCode() != 200) return null;
        Object data = ((Map<String, Object>) Json.parse(r.body())).get("data");
        return data instanceof Map ? (Map<String, Object>) data : null;
    }

    @SuppressWarnings("unchecked")
    static String exchange(String code) throws IOException, InterruptedException {
        String form = "grant_type=authorization_code&code=" + URLEncoder.encode(code, StandardCharsets.UTF_8)
            + "&redirect_uri=" + URLEncoder.encode(redirectUri, StandardCharsets.UTF_8);
        String query = switch (bug) {
            case "secret_in_auth_param" -> "?auth=" + URLEncoder.encode(clientId + ":" + clientSecret, StandardCharsets.UTF_8);
            case "nonce_named_secret" -> "?secret=" + Long.toHexString(RANDOM.nextLong());
            default -> "";
        };
        HttpResponse<String> r = call(HttpRequest.newBuilder(URI.create(sim + "/oauth/tokens" + query))
            .header("Authorization", basic()).header("Content-Type", "application/x-www-form-urlencoded")
            .POST(HttpRequest.BodyPublishers.ofString(form)));
        if (bug.equals("crash_on_bad_code")) return ((Map<String, Object>) Json.parse(r.body())).get("access_token").toString();
        if (r.statusCode() != 200) return null;
        Object t = ((Map<String, Object>) Json.parse(r.body())).get("access_token");
        return t instanceof String s ? s : null;
    }

    @SuppressWarnings("unchecked")
    static String districtToken(String district, boolean fresh) throws IOException, InterruptedException {
        if (!fresh && DISTRICT_TOKENS.containsKey(district)) return DISTRICT_TOKENS.get(district);
        HttpResponse<String> r = call(HttpRequest.newBuilder(URI.create(sim + "/oauth/tokens?owner_type=district&district="
            + URLEncoder.encode(district, StandardCharsets.UTF_8))).header("Authorization", basic()));
        Object data = r.statusCode() == 200 ? ((Map<String, Object>) Json.parse(r.body())).get("data") : null;
        if (!(data instanceof List<?> list) || list.isEmpty()) throw new IOException("no district-app token for " + district);
        String token = (String) ((Map<String, Object>) list.get(0)).get("access_token");
        DISTRICT_TOKENS.put(district, token);
        return token;
    }

    /** POST the grade; retry 429 (honouring Retry-After), 5xx and I/O errors with a doubling pause. */
    static int postGrade(String token, String json) throws IOException, InterruptedException {
        long pause = 250;
        int limit = 4;
        for (int attempt = 1; ; attempt++) {
            HttpResponse<String> r;
            try {
                r = call(HttpRequest.newBuilder(URI.create(sim + "/v1/grade"))
                    .header("Authorization", (bug.equals("token_scheme") ? "Token " : "Bearer ") + token)
                    .header("Content-Type", "application/json")
                    .POST(HttpRequest.BodyPublishers.ofString(json)));
            } catch (IOException e) {
                if (attempt >= limit) throw e;
                Thread.sleep(pause);
                pause *= 2;
                continue;
            }
            int s = r.statusCode();
            boolean again = bug.equals("retries_400") ? s >= 400 && s != 401 : s == 429 || s >= 500;
            if (bug.equals("no_retry_5xx") && s >= 500) again = false;
            if (!again || attempt >= limit) return s;
            long wait = s == 429 || s >= 500 ? pause : 100;   // a 4xx gets here only with BUG=retries_400
            String after = r.headers().firstValue("Retry-After").orElse(null);
            if (s == 429 && after != null && !bug.equals("ignores_retry_after")) {
                try { wait = Math.max(wait, Long.parseLong(after.trim()) * 1000); } catch (NumberFormatException ignored) { }
            }
            Thread.sleep(wait);
            pause *= 2;
        }
    }

    // --- handlers ---------------------------------------------------------------------------

    static void assignments(HttpExchange ex) throws IOException, InterruptedException {
        String auth = ex.getRequestHeaders().getFirst("Authorization");
        if (!bug.equals("no_auth_check")) {
            if (auth == null || !auth.regionMatches(true, 0, "Bearer ", 0, 7)) {
                send(ex, 401, "application/json", "{\"error\":\"missing bearer token\"}");
                return;
            }
            if (me(auth.substring(7).trim()) == null) {
                send(ex, 401, "application/json", "{\"error\":\"invalid bearer token\"}");
                return;
            }
        }
        List<Object> items = new ArrayList<>();
        for (Assignment a : CATALOG) {
            Map<String, Object> item = new LinkedHashMap<>();
            if (!bug.equals("missing_type")) item.put("type", "assignment");   // key order differs from the docs'
            item.put("id", bug.equals("numeric_ids") ? (Object) Long.valueOf(a.id().replaceAll("\\D", "0")) : a.id());
            item.put("name", a.name());
            if (a.description() != null) item.put("description", a.description());
            items.add(item);
        }
        send(ex, 200, "application/json;charset=UTF-8", Json.write(Map.of("assignments", items)));
    }

    static void callback(HttpExchange ex) throws IOException, InterruptedException {
        Map<String, String> q = query(ex);
        String code = q.get("code");
        if (code == null || code.isEmpty()) {
            page(ex, 400, "Login failed", "The link has no code. Open the assignment from Schoology again.");
            return;
        }
        String token = exchange(code);
        Map<String, Object> user = token == null ? null : me(token);
        if (user == null) {
            page(ex, 401, "Login failed", "Clever did not accept this link. Open the assignment from Schoology again.");
            return;
        }
        byte[] raw = new byte[18];
        RANDOM.nextBytes(raw);
        String sid = Base64.getUrlEncoder().withoutPadding().encodeToString(raw);
        SESSIONS.put(sid, user);
        lastLogin = (String) user.get("id");
        String cookie = "jsid=" + sid + "; Path=/; HttpOnly; SameSite=Lax";
        String state = q.getOrDefault("state", "");
        if (bug.equals("ignores_state") || !state.startsWith("assignment:") || state.length() == 11) {
            redirect(ex, "/home", cookie);
            return;
        }
        String id = bug.equals("keeps_prefix") ? state : state.substring(11);
        if (bug.equals("open_redirect") && id.matches("(?i)^(https?:)?//.*")) {
            redirect(ex, id, cookie);
            return;
        }
        redirect(ex, "/assignments/" + URLEncoder.encode(id, StandardCharsets.UTF_8).replace("+", "%20"), cookie);
    }

    static void assignmentPage(HttpExchange ex, String rawId) throws IOException {
        Map<String, Object> user = session(ex);
        if (user == null) {
            redirect(ex, "/", null);
            return;
        }
        String id;
        try {
            id = URLDecoder.decode(rawId.replace("+", "%2B"), StandardCharsets.UTF_8);
        } catch (IllegalArgumentException e) {
            page(ex, 400, "Bad link", "This assignment link is malformed.");
            return;
        }
        for (Assignment a : CATALOG) {
            if (a.id().equals(id)) {
                page(ex, 200, a.name(), "Ready when you are, " + user.get("id") + ".");
                return;
            }
        }
        if (bug.equals("reflects_id")) send(ex, 404, "text/html", "<html><body>No assignment " + id + "</body></html>");
        else page(ex, 404, "Assignment not found", "There is no assignment \"" + id + "\". Go back to Schoology.");
    }

    static void home(HttpExchange ex) throws IOException {
        if (session(ex) == null) redirect(ex, "/", null);
        else page(ex, 200, "Your assignments", "Photosynthesis Quiz, Density Lab, Persuasive Essay");
    }

    @SuppressWarnings("unchecked")
    static void complete(HttpExchange ex) throws IOException, InterruptedException {
        Object parsed;
        try (InputStream in = ex.getRequestBody()) {
            parsed = Json.parse(new String(in.readAllBytes(), StandardCharsets.UTF_8));
        } catch (RuntimeException e) {
            parsed = null;
        }
        if (!(parsed instanceof Map<?, ?> m) || !(m.get("user_id") instanceof String user)
                || !(m.get("district_id") instanceof String district) || !(m.get("score") instanceof BigDecimal score)) {
            send(ex, 400, "application/json", "{\"error\":\"need user_id, district_id, assignment_id, score\"}");
            return;
        }
        Assignment a = CATALOG.stream().filter(x -> x.id().equals(String.valueOf(m.get("assignment_id")))).findFirst().orElse(null);
        if (a == null) {
            send(ex, 404, "application/json", "{\"error\":\"unknown assignment\"}");
            return;
        }
        Map<String, Object> grade = new LinkedHashMap<>();
        grade.put("userID", bug.equals("wrong_user") && lastLogin != null ? lastLogin : user);
        grade.put("assignmentID", a.id());
        if (bug.equals("percent_0_100")) grade.put("percentage", score.movePointRight(2));
        else if (bug.equals("percent_string")) grade.put("percentage", String.format("%.2f", score));
        else if (a.points() > 0) {
            grade.put("scoreGiven", score.multiply(BigDecimal.valueOf(a.points())).setScale(3, RoundingMode.HALF_UP));
            grade.put("scoreMaximum", a.points());
        } else grade.put("percentage", score);
        String json = Json.write(grade);
        int status;
        try {
            status = postGrade(districtToken(district, false), json);
            if (status == 401) status = postGrade(districtToken(district, true), json);
        } catch (IOException e) {
            send(ex, 502, "application/json", Json.write(Map.of("error", String.valueOf(e.getMessage()))));
            return;
        }
        send(ex, status == 200 ? 200 : 502, "application/json", Json.write(Map.of("clever_status", status)));
    }

    // --- a small JSON reader/writer (numbers as BigDecimal) ----------------------------------

    static final class Json {
        private final String s;
        private int i;

        private Json(String s) { this.s = s; }

        static Object parse(String text) {
            Json p = new Json(text);
            Object v = p.value();
            p.ws();
            if (p.i != text.length()) throw new IllegalArgumentException("trailing data");
            return v;
        }

        private void ws() { while (i < s.length() && Character.isWhitespace(s.charAt(i))) i++; }

        private Object value() {
            ws();
            if (i >= s.length()) throw new IllegalArgumentException("end of input");
            char c = s.charAt(i);
            if (c == '{') {
                Map<String, Object> m = new LinkedHashMap<>();
                i++; ws();
                if (s.charAt(i) == '}') { i++; return m; }
                while (true) {
                    ws(); String k = string(); ws(); expect(':');
                    m.put(k, value()); ws();
                    if (s.charAt(i) == ',') { i++; continue; }
                    expect('}'); return m;
                }
            }
            if (c == '[') {
                List<Object> l = new ArrayList<>();
                i++; ws();
                if (s.charAt(i) == ']') { i++; return l; }
                while (true) {
                    l.add(value()); ws();
                    if (s.charAt(i) == ',') { i++; continue; }
                    expect(']'); return l;
                }
            }
            if (c == '"') return string();
            if (s.startsWith("true", i)) { i += 4; return Boolean.TRUE; }
            if (s.startsWith("false", i)) { i += 5; return Boolean.FALSE; }
            if (s.startsWith("null", i)) { i += 4; return null; }
            int start = i;
            while (i < s.length() && "+-0123456789.eE".indexOf(s.charAt(i)) >= 0) i++;
            return new BigDecimal(s.substring(start, i));
        }

        private void expect(char c) {
            if (i >= s.length() || s.charAt(i) != c) throw new IllegalArgumentException("expected " + c);
            i++;
        }

        private String string() {
            expect('"');
            StringBuilder b = new StringBuilder();
            while (true) {
                char c = s.charAt(i++);
                if (c == '"') return b.toString();
                if (c != '\\') { b.append(c); continue; }
                char e = s.charAt(i++);
                switch (e) {
                    case 'n' -> b.append('\n');
                    case 't' -> b.append('\t');
                    case 'r' -> b.append('\r');
                    case 'b' -> b.append('\b');
                    case 'f' -> b.append('\f');
                    case 'u' -> { b.append((char) Integer.parseInt(s.substring(i, i + 4), 16)); i += 4; }
                    default -> b.append(e);
                }
            }
        }

        static String write(Object v) {
            if (v == null) return "null";
            if (v instanceof String str) {
                StringBuilder b = new StringBuilder("\"");
                for (char c : str.toCharArray()) {
                    if (c == '"' || c == '\\') b.append('\\').append(c);
                    else if (c < 0x20) b.append(String.format("\\u%04x", (int) c));
                    else b.append(c);
                }
                return b.append('"').toString();
            }
            if (v instanceof BigDecimal d) return d.stripTrailingZeros().toPlainString();
            if (v instanceof Number || v instanceof Boolean) return v.toString();
            if (v instanceof Map<?, ?> m) {
                StringJoiner j = new StringJoiner(",", "{", "}");
                m.forEach((k, val) -> j.add(write(String.valueOf(k)) + ":" + write(val)));
                return j.toString();
            }
            if (v instanceof List<?> l) {
                StringJoiner j = new StringJoiner(",", "[", "]");
                l.forEach(x -> j.add(write(x)));
                return j.toString();
            }
            throw new IllegalArgumentException("cannot write " + v.getClass());
        }
    }
}
