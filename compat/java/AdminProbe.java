import java.util.*;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.*;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.config.ConfigResource;

/**
 * AdminClient probe. Usage: AdminProbe BOOTSTRAP TOPIC PARTITIONS TEMP_TOPIC
 * Creates TOPIC (PARTITIONS partitions) and TEMP_TOPIC, lists, describes topics,
 * cluster and configs, deletes TEMP_TOPIC. Prints tab-separated lines.
 */
public class AdminProbe {
    public static void main(String[] args) throws Exception {
        String bootstrap = args[0], topic = args[1], temp = args[3];
        int partitions = Integer.parseInt(args[2]);
        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, 20000);
        props.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 30000);
        try (Admin admin = Admin.create(props)) {
            admin.createTopics(List.of(new NewTopic(topic, partitions, (short) 1),
                                       new NewTopic(temp, 1, (short) 1)))
                 .all().get(30, TimeUnit.SECONDS);
            System.out.println("CREATED\t" + topic + "\t" + temp);

            Set<String> names = admin.listTopics().names().get(30, TimeUnit.SECONDS);
            for (String n : new TreeSet<>(names)) System.out.println("LISTED\t" + n);

            Map<String, TopicDescription> descs =
                admin.describeTopics(List.of(topic)).allTopicNames().get(30, TimeUnit.SECONDS);
            TopicDescription d = descs.get(topic);
            System.out.println("TOPIC\t" + d.name() + "\t" + d.partitions().size() + "\t" + d.isInternal());
            for (TopicPartitionInfo p : d.partitions()) {
                System.out.println("PARTITION\t" + p.partition() + "\t" + p.leader().id() + "\t"
                    + ids(p.replicas()) + "\t" + ids(p.isr()));
            }

            DescribeClusterResult c = admin.describeCluster();
            System.out.println("CLUSTER\t" + c.clusterId().get(30, TimeUnit.SECONDS) + "\t"
                + c.controller().get(30, TimeUnit.SECONDS).id());
            for (Node n : c.nodes().get(30, TimeUnit.SECONDS)) {
                System.out.println("NODE\t" + n.id() + "\t" + n.host() + "\t" + n.port());
            }

            ConfigResource res = new ConfigResource(ConfigResource.Type.TOPIC, topic);
            Config cfg = admin.describeConfigs(List.of(res)).all().get(30, TimeUnit.SECONDS).get(res);
            for (ConfigEntry e : cfg.entries()) {
                System.out.println("CONFIG\t" + e.name() + "\t" + e.value());
            }

            admin.deleteTopics(List.of(temp)).all().get(30, TimeUnit.SECONDS);
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
            while (admin.listTopics().names().get(30, TimeUnit.SECONDS).contains(temp)) {
                if (System.nanoTime() > deadline) throw new IllegalStateException(temp + " still listed");
                Thread.sleep(200);
            }
            System.out.println("DELETED\t" + temp);
        }
        System.out.println("DONE");
    }

    private static String ids(List<Node> nodes) {
        StringJoiner j = new StringJoiner(",");
        for (Node n : nodes) j.add(Integer.toString(n.id()));
        return j.toString();
    }
}
