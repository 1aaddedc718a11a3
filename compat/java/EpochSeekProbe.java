import java.time.Duration;
import java.util.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

/**
 * Consumer probe for position validation (KIP-320): assign one partition, seek to
 * OFFSET with leader epoch EPOCH (the consumer then validates the position with
 * OffsetForLeaderEpoch before fetching), and consume EXPECTED records while metadata
 * is refreshed every 200 ms, for at least MIN_MS milliseconds.
 * Usage: EpochSeekProbe BOOTSTRAP TOPIC PARTITION OFFSET EPOCH EXPECTED MIN_MS
 * Prints "REC \t partition \t offset \t KEYHEX \t VALUEHEX" per record, then
 * "POSITION \t partition \t offset", then DONE; exits non-zero on any client error.
 */
public class EpochSeekProbe {
    public static void main(String[] args) throws Exception {
        String bootstrap = args[0], topic = args[1];
        TopicPartition tp = new TopicPartition(topic, Integer.parseInt(args[2]));
        long offset = Long.parseLong(args[3]);
        int epoch = Integer.parseInt(args[4]);
        int expected = Integer.parseInt(args[5]);
        long minMs = Long.parseLong(args[6]);
        Properties props = new Properties();
        props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "none");
        props.put(ConsumerConfig.METADATA_MAX_AGE_CONFIG, "200");
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(props)) {
            consumer.assign(List.of(tp));
            consumer.seek(tp, new OffsetAndMetadata(offset, Optional.of(epoch), ""));
            int n = 0;
            long start = System.nanoTime();
            long deadline = start + Duration.ofSeconds(30).toNanos();
            while (n < expected || System.nanoTime() - start < minMs * 1_000_000L) {
                if (System.nanoTime() > deadline) {
                    System.out.println("TIMEOUT\t" + n);
                    break;
                }
                for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(100))) {
                    System.out.println("REC\t" + r.partition() + "\t" + r.offset() + "\t" + Hex.enc(r.key()) + "\t"
                        + Hex.enc(r.value()));
                    n++;
                }
            }
            System.out.println("POSITION\t" + tp.partition() + "\t" + consumer.position(tp));
        }
        System.out.println("DONE");
    }
}
