import java.util.HexFormat;

/** Shared encoding for the compat probes: bytes as lowercase hex, null as "-". */
final class Hex {
    private static final HexFormat HEX = HexFormat.of();

    static String enc(byte[] b) {
        return b == null ? "-" : (b.length == 0 ? "" : HEX.formatHex(b));
    }

    static byte[] dec(String s) {
        return "-".equals(s) ? null : HEX.parseHex(s);
    }

    private Hex() {}
}
