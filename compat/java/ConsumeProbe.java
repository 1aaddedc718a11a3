import java.time.Duration;
import java.util.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

/**
 * Consumer probe: assign + seek, no group.
 * Usage: ConsumeProbe BOOTSTRAP TOPIC EXPECTED PARTITION:OFFSET|PARTITION:beginning|key=value ...
 * Prints BEGIN/END offsets per partition, then
 * "REC \t partition \t offset \t timestamp \t KEYHEX \t VALUEHEX [\t NAME=HEX ...]"
 * per record; stops after EXPECTED records (then polls once more for extras) or 30 s.
 */
public class ConsumeProbe {
    public static void main(String[] args) throws Exception {
        String bootstrap = args[0], topic = args[1];
        int expected = Integer.parseInt(args[2]);
        Properties props = new Properties();
        props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "none");
        Map<TopicPartition, String> start = new LinkedHashMap<>();
        for (int i = 3; i < args.length; i++) {
            if (args[i].contains("=")) {  // key=value consumer config (security settings, ...)
                String[] kv = args[i].split("=", 2);
                props.put(kv[0], kv[1]);
                continue;
            }
            String[] po = args[i].split(":", 2);
            start.put(new TopicPartition(topic, Integer.parseInt(po[0])), po[1]);
        }
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(props)) {
            consumer.assign(start.keySet());
            for (Map.Entry<TopicPartition, String> e : start.entrySet()) {
                if (e.getValue().equals("beginning")) consumer.seekToBeginning(List.of(e.getKey()));
                else consumer.seek(e.getKey(), Long.parseLong(e.getValue()));
            }
            Map<TopicPartition, Long> begin = consumer.beginningOffsets(start.keySet(), Duration.ofSeconds(30));
            Map<TopicPartition, Long> end = consumer.endOffsets(start.keySet(), Duration.ofSeconds(30));
            for (TopicPartition tp : start.keySet()) {
                System.out.println("BEGIN\t" + tp.partition() + "\t" + begin.get(tp));
                System.out.println("END\t" + tp.partition() + "\t" + end.get(tp));
            }
            int n = 0;
            long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
            boolean extraPoll = false;
            while (true) {
                ConsumerRecords<byte[], byte[]> recs = consumer.poll(Duration.ofMillis(500));
                for (ConsumerRecord<byte[], byte[]> r : recs) {
                    StringBuilder sb = new StringBuilder("REC\t");
                    sb.append(r.partition()).append('\t').append(r.offset()).append('\t')
                      .append(r.timestamp()).append('\t').append(Hex.enc(r.key())).append('\t')
                      .append(Hex.enc(r.value()));
                    for (Header h : r.headers()) sb.append('\t').append(h.key()).append('=').append(Hex.enc(h.value()));
                    System.out.println(sb);
                    n++;
                }
                if (extraPoll) break;
                if (n >= expected) extraPoll = true;
                else if (System.nanoTime() > deadline) {
                    System.out.println("TIMEOUT\t" + n);
                    break;
                }
            }
            for (TopicPartition tp : start.keySet()) {
                System.out.println("POSITION\t" + tp.partition() + "\t" + consumer.position(tp));
            }
        }
        System.out.println("DONE");
    }
}
