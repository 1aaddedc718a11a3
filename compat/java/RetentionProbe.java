import java.util.*;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.*;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;

/**
 * Retention through the AdminClient. Usage: RetentionProbe BOOTSTRAP TOPIC RETENTION_MS
 * Prints the earliest offset of TOPIC-0, sets retention.ms with incrementalAlterConfigs
 * on the live topic, then polls listOffsets(earliest) until it moves (30 s deadline)
 * and prints it with the configured value read back. Tab-separated lines.
 */
public class RetentionProbe {
    public static void main(String[] args) throws Exception {
        String bootstrap = args[0], topic = args[1], retentionMs = args[2];
        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, 20000);
        props.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 30000);
        TopicPartition tp = new TopicPartition(topic, 0);
        try (Admin admin = Admin.create(props)) {
            long before = earliest(admin, tp);
            System.out.println("BEFORE\t" + before);
            ConfigResource res = new ConfigResource(ConfigResource.Type.TOPIC, topic);
            AlterConfigOp op = new AlterConfigOp(new ConfigEntry("retention.ms", retentionMs), AlterConfigOp.OpType.SET);
            admin.incrementalAlterConfigs(Map.of(res, List.of(op))).all().get(30, TimeUnit.SECONDS);
            Config cfg = admin.describeConfigs(List.of(res)).all().get(30, TimeUnit.SECONDS).get(res);
            System.out.println("CONFIG\t" + cfg.get("retention.ms").value());
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
            long now = before;
            while ((now = earliest(admin, tp)) == before) {
                if (System.nanoTime() > deadline) throw new IllegalStateException("earliest offset still " + now);
                Thread.sleep(100);
            }
            System.out.println("EARLIEST\t" + now);
            System.out.println("LATEST\t" + admin.listOffsets(Map.of(tp, OffsetSpec.latest())).partitionResult(tp)
                .get(30, TimeUnit.SECONDS).offset());
        }
        System.out.println("DONE");
    }

    static long earliest(Admin admin, TopicPartition tp) throws Exception {
        return admin.listOffsets(Map.of(tp, OffsetSpec.earliest())).partitionResult(tp).get(30, TimeUnit.SECONDS).offset();
    }
}
