import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.*;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * Producer probe with the client's default settings (idempotent, acks=all).
 * Usage: ProduceProbe BOOTSTRAP TOPIC [key=value producer config ...]
 * Reads records from stdin, one a line: PARTITION \t KEYHEX \t VALUEHEX [\t NAME=HEX ...]
 * (hex "-" = null). Prints "ACK \t index \t partition \t offset \t timestamp" per record.
 */
public class ProduceProbe {
    public static void main(String[] args) throws Exception {
        String bootstrap = args[0], topic = args[1];
        Properties props = new Properties();
        props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        for (int i = 2; i < args.length; i++) {
            String[] kv = args[i].split("=", 2);
            props.put(kv[0], kv[1]);
        }
        List<Future<RecordMetadata>> futures = new ArrayList<>();
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(props)) {
            BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
            String line;
            while ((line = in.readLine()) != null) {
                if (line.isEmpty()) continue;
                String[] f = line.split("\t", -1);
                ProducerRecord<byte[], byte[]> rec = new ProducerRecord<>(
                    topic, Integer.parseInt(f[0]), Hex.dec(f[1]), Hex.dec(f[2]));
                for (int i = 3; i < f.length; i++) {
                    String[] h = f[i].split("=", 2);
                    rec.headers().add(new RecordHeader(h[0], Hex.dec(h[1])));
                }
                futures.add(producer.send(rec));
            }
            producer.flush();
            for (int i = 0; i < futures.size(); i++) {
                RecordMetadata md = futures.get(i).get(60, TimeUnit.SECONDS);
                System.out.println("ACK\t" + i + "\t" + md.partition() + "\t" + md.offset() + "\t" + md.timestamp());
            }
        }
        System.out.println("DONE");
    }
}
