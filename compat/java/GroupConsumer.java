import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.*;
import java.util.concurrent.atomic.AtomicBoolean;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.RebalanceInProgressException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

/**
 * A consumer group member that commits every record it processes.
 * Usage: GroupConsumer BOOTSTRAP TOPIC GROUP PROTOCOL(classic|consumer) INSTANCE_ID|- [KEY=VALUE ...]
 * (extra consumer properties, e.g. session.timeout.ms=6000).
 * Prints "ASSIGNED\tp,p,..." / "REVOKED\t..." / "LOST\t..." on rebalances and
 * "REC\tpartition\toffset\tvalue" for each record processed, before its offset is committed
 * (commitSync, one record at a time).
 * Runs until stdin closes (then closes the consumer and prints DONE) or it is killed.
 */
public class GroupConsumer {
    static synchronized void out(String line) {
        System.out.println(line);
        System.out.flush();
    }

    static String parts(Collection<TopicPartition> tps) {
        StringBuilder sb = new StringBuilder();
        tps.stream().map(TopicPartition::partition).sorted().forEach(p -> {
            if (sb.length() > 0) sb.append(',');
            sb.append(p);
        });
        return sb.toString();
    }

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0], topic = args[1], group = args[2], protocol = args[3], instance = args[4];
        Properties props = new Properties();
        props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        props.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, protocol);
        props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        props.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, "50");
        if (!instance.equals("-")) props.put(ConsumerConfig.GROUP_INSTANCE_ID_CONFIG, instance);
        for (int i = 5; i < args.length; i++) {
            String[] kv = args[i].split("=", 2);
            props.put(kv[0], kv[1]);
        }
        AtomicBoolean stop = new AtomicBoolean(false);
        Thread stdin = new Thread(() -> {
            try (BufferedReader r = new BufferedReader(new InputStreamReader(System.in))) {
                while (r.readLine() != null) { }
            } catch (Exception ignored) { }
            stop.set(true);
        });
        stdin.setDaemon(true);
        stdin.start();
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(props)) {
            consumer.subscribe(List.of(topic), new ConsumerRebalanceListener() {
                public void onPartitionsRevoked(Collection<TopicPartition> p) { out("REVOKED\t" + parts(p)); }
                public void onPartitionsAssigned(Collection<TopicPartition> p) { out("ASSIGNED\t" + parts(p)); }
                public void onPartitionsLost(Collection<TopicPartition> p) { out("LOST\t" + parts(p)); }
            });
            while (!stop.get()) {
                ConsumerRecords<byte[], byte[]> records = consumer.poll(Duration.ofMillis(200));
                // Next offset to process per partition of this batch.
                Map<TopicPartition, Long> next = new HashMap<>();
                for (TopicPartition tp : records.partitions()) next.put(tp, records.records(tp).get(0).offset());
                for (ConsumerRecord<byte[], byte[]> r : records) {
                    TopicPartition tp = new TopicPartition(r.topic(), r.partition());
                    // Process (print), then commit: at-least-once. A process killed between
                    // the two has its record processed again by the partition's next owner.
                    out("REC\t" + r.partition() + "\t" + r.offset() + "\t" + new String(r.value(), StandardCharsets.UTF_8));
                    try {
                        consumer.commitSync(Map.of(tp, new OffsetAndMetadata(r.offset() + 1)));
                    } catch (CommitFailedException | RebalanceInProgressException e) {
                        // Not committed: rewind what is still ours (this record is processed
                        // again); moved partitions continue from the committed offset.
                        out("COMMIT_FAILED\t" + r.partition() + "\t" + r.offset() + "\t" + e.getClass().getSimpleName());
                        Set<TopicPartition> mine = consumer.assignment();
                        for (Map.Entry<TopicPartition, Long> e2 : next.entrySet()) {
                            if (mine.contains(e2.getKey())) consumer.seek(e2.getKey(), e2.getValue());
                        }
                        break;
                    }
                    next.put(tp, r.offset() + 1);
                }
            }
        }
        out("DONE");
    }
}
