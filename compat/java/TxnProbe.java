import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.ProducerFencedException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * Consume-transform-produce with exactly-once semantics (KIP-98, KIP-447).
 * Usage: TxnProbe BOOTSTRAP INPUT OUTPUT GROUP TXN_ID TOTAL
 * Reads TOTAL records of INPUT (read_committed, group GROUP), writes each value
 * upper-cased to OUTPUT in transactions that also commit the consumed offsets; every
 * third transaction is aborted instead (and the consumer rewound). Then a second
 * producer with the same transactional id fences the first, whose next commit must fail.
 * Prints "TXN \t commit|abort \t records" per transaction, "FENCED" and "DONE".
 */
public class TxnProbe {
    public static void main(String[] args) throws Exception {
        String bootstrap = args[0], input = args[1], output = args[2], group = args[3], txnId = args[4];
        long total = Long.parseLong(args[5]);
        Properties cp = new Properties();
        cp.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        cp.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        cp.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        cp.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        cp.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        cp.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, "150");
        cp.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        cp.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        Properties pp = new Properties();
        pp.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        pp.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, txnId);
        pp.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        pp.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(cp);
             KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(pp)) {
            producer.initTransactions();
            consumer.subscribe(List.of(input));
            long done = 0;
            int txn = 0;
            long deadline = System.currentTimeMillis() + 120_000;
            while (done < total) {
                if (System.currentTimeMillis() > deadline) {
                    System.out.println("TIMEOUT\t" + done);
                    break;
                }
                ConsumerRecords<byte[], byte[]> recs = consumer.poll(Duration.ofMillis(200));
                if (recs.isEmpty()) continue;
                producer.beginTransaction();
                Map<TopicPartition, OffsetAndMetadata> offsets = new HashMap<>();
                for (ConsumerRecord<byte[], byte[]> r : recs) {
                    byte[] value = new String(r.value(), StandardCharsets.UTF_8).toUpperCase().getBytes(StandardCharsets.UTF_8);
                    producer.send(new ProducerRecord<>(output, r.partition(), r.key(), value));
                    offsets.put(new TopicPartition(r.topic(), r.partition()), new OffsetAndMetadata(r.offset() + 1));
                }
                if (txn % 3 == 2) {
                    producer.flush();
                    producer.abortTransaction();
                    for (TopicPartition tp : recs.partitions()) {
                        consumer.seek(tp, recs.records(tp).get(0).offset());
                    }
                    System.out.println("TXN\tabort\t" + recs.count());
                } else {
                    producer.sendOffsetsToTransaction(offsets, consumer.groupMetadata());
                    producer.commitTransaction();
                    done += recs.count();
                    System.out.println("TXN\tcommit\t" + recs.count());
                }
                txn++;
            }
            // A second producer with the same transactional id fences this one.
            producer.beginTransaction();
            producer.send(new ProducerRecord<>(output, 0, "zombie".getBytes(StandardCharsets.UTF_8), "ZOMBIE".getBytes(StandardCharsets.UTF_8)));
            producer.flush();
            try (KafkaProducer<byte[], byte[]> second = new KafkaProducer<>(pp)) {
                second.initTransactions();
                try {
                    producer.commitTransaction();
                    System.out.println("NOT_FENCED");
                } catch (ProducerFencedException e) {
                    System.out.println("FENCED");
                } catch (org.apache.kafka.common.KafkaException e) {
                    System.out.println((e.getCause() instanceof ProducerFencedException ? "FENCED" : "ERROR\t" + e));
                }
            }
        }
        System.out.println("DONE");
    }
}
