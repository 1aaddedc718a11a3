import java.util.*;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.*;

/**
 * SCRAM user probe (AlterUserScramCredentials / DescribeUserScramCredentials). Usage:
 *   ScramProbe BOOTSTRAP upsert USER PASSWORD ITERATIONS [client props...]
 *     creates or replaces USER's SCRAM-SHA-512 credential; prints OK or ERROR with the
 *     exception class.
 *   ScramProbe BOOTSTRAP delete USER [client props...]
 *     deletes USER's SCRAM-SHA-512 credential; prints OK or ERROR.
 *   ScramProbe BOOTSTRAP describe [client props...]
 *     prints one USER line per user and credential: name, mechanism, iterations.
 * Prints tab-separated lines, then DONE.
 */
public class ScramProbe {
    public static void main(String[] args) throws Exception {
        String bootstrap = args[0], mode = args[1];
        int first = mode.equals("upsert") ? 5 : mode.equals("delete") ? 3 : 2;
        Properties props = new Properties();
        for (int i = first; i < args.length; i++) {
            String[] kv = args[i].split("=", 2);
            props.put(kv[0], kv[1]);
        }
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 30000);
        try (Admin admin = Admin.create(props)) {
            if (mode.equals("describe")) {
                Map<String, UserScramCredentialsDescription> all =
                    admin.describeUserScramCredentials().all().get(30, TimeUnit.SECONDS);
                for (String user : new TreeSet<>(all.keySet())) {
                    for (ScramCredentialInfo info : all.get(user).credentialInfos()) {
                        System.out.println("USER\t" + user + "\t" + info.mechanism() + "\t" + info.iterations());
                    }
                }
            } else {
                UserScramCredentialAlteration change = mode.equals("upsert")
                    ? new UserScramCredentialUpsertion(args[2],
                        new ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, Integer.parseInt(args[4])), args[3])
                    : new UserScramCredentialDeletion(args[2], ScramMechanism.SCRAM_SHA_512);
                try {
                    admin.alterUserScramCredentials(List.of(change)).all().get(30, TimeUnit.SECONDS);
                    System.out.println("OK");
                } catch (ExecutionException e) {
                    System.out.println("ERROR\t" + e.getCause().getClass().getSimpleName());
                }
            }
        }
        System.out.println("DONE");
    }
}
