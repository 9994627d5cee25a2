// Peoplelogic's documented JVM verification (javax.crypto, as in its Kotlin sample),
// turned around to sign: Base64(HmacSHA256(Base64.decode(secretBase64), body)).
// usage: java Peoplelogic.java BODY_FILE SECRET_BASE64
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Base64;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

public class Peoplelogic {
    public static void main(String[] args) throws Exception {
        byte[] payload = Files.readAllBytes(Path.of(args[0]));
        byte[] secretBytes = Base64.getDecoder().decode(args[1]);
        Mac hmac = Mac.getInstance("HmacSHA256");
        hmac.init(new SecretKeySpec(secretBytes, "HmacSHA256"));
        System.out.println("X-Signature: " + Base64.getEncoder().encodeToString(hmac.doFinal(payload)));
    }
}
